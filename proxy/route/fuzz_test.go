package route

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// FuzzMatch runs random authorities, paths, queries and header values
// through a compiled table: nothing may panic, and whatever matches must
// produce a usable action.
func FuzzMatch(f *testing.F) {
	f.Add("www.example.com", "/svc1/x", "a=1", "1", "2")
	f.Add("API.example.com:80", "/users/1", "", "", "")
	f.Add("[::1]:8080", "/api/", "q=%zz&&=", "1,1", "Bearer")
	f.Add("", "", "", "", "")
	f.Add("a.staging.example.com", "//..//%00", "x", "\x00", "\xff")
	tbl := mustTable(f, benchVirtualHosts())
	redirects := mustTable(f, []config.VirtualHost{{Name: "r", Domains: []string{"*"}, Routes: []config.Route{
		{Match: config.RouteMatch{Prefix: sp("/old"), CaseSensitive: bp(false)}, Redirect: &config.RedirectAction{HTTPSRedirect: true, PrefixRewrite: sp("/new")}},
		{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{PortRedirect: 8443, StripQuery: true}},
	}}})
	f.Fuzz(func(t *testing.T, authority, path, rawQuery, canary, version string) {
		r := &http.Request{
			Method: "GET",
			Host:   authority,
			URL:    &url.URL{Path: path, RawQuery: rawQuery},
			Header: http.Header{"X-Canary": {canary, version}, "X-Api-Version": {version}, "Authorization": {canary}},
		}
		red := redirects.SelectVirtualHost(authority).Match(r)
		switch {
		case red == nil && strings.HasPrefix(path, "/"):
			t.Fatal("no redirect route despite a catch-all")
		case red != nil:
			if loc, status := red.RedirectLocation(r); !strings.Contains(loc, "://") || status < 300 {
				t.Fatalf("redirect %q %d", loc, status)
			}
		}
		vh := tbl.SelectVirtualHost(authority)
		if vh == nil {
			t.Fatalf("%q: no virtual host despite a default", authority)
		}
		rt := vh.Match(r)
		if rt == nil {
			return
		}
		switch rt.Action {
		case ActionRoute:
			if c := rt.PickCluster(r, uint64(len(path))); c == nil || c.Name == "" {
				t.Fatalf("route %s picked no cluster", rt.Name)
			}
			_ = rt.RewritePath(path)
			rt.ApplyRequest(nil, r.Header, &Vars{Request: r.Header})
		default:
			t.Fatalf("unexpected action %v", rt.Action)
		}
	})
}

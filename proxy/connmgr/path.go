package connmgr

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/pathnorm"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// pathNormalizationFailed is Envoy's response code details for a request
// refused, or redirected, by path normalisation.
const pathNormalizationFailed = "path_normalization_failed"

// normalizePath applies the listener's path normalisation to req before
// any route sees it, as Envoy's connection manager does: req.URL (which
// route matching and the upstream request read), req.RequestURI (:path for
// header matchers, hash policies and rate-limit descriptors) and the
// access log's path all become the normalised path; the query is kept as
// received. It reports whether it answered the request itself: 400 for a
// path it cannot normalise safely, or 307 to the unescaped path under
// unescape_and_redirect (400 for gRPC, whose clients do not follow
// redirects). A path that is already normal costs no allocation.
func normalizePath(w http.ResponseWriter, req *http.Request, info *streaminfo.Info, lc *config.Listener, st *Stats, serverName string, prepare func(http.Header)) (done bool) {
	if req.URL.Path == "*" || req.Method == http.MethodConnect && req.URL.Path == "" {
		return false // OPTIONS * and CONNECT's authority have no path
	}
	target := req.RequestURI
	if !strings.HasPrefix(target, "/") {
		// Absolute form ("GET http://host/x HTTP/1.1"): normalise the
		// path as parsed; the request goes upstream in origin form.
		target = req.URL.EscapedPath()
		if req.URL.ForceQuery || req.URL.RawQuery != "" {
			target += "?" + req.URL.RawQuery
		}
	}
	out, redirect, err := pathnorm.Normalize(target, lc.PathNormalizationOptions())
	if err == nil && out == target {
		return false
	}
	var decoded string
	path, _, _ := strings.Cut(out, "?")
	if err == nil {
		// Only with normalize_path off can an invalid escape remain
		// (unescaping %2F in "%%2F" leaves "%/").
		decoded, err = url.PathUnescape(path)
	}
	if err != nil {
		info.ResponseFlags.Set(streaminfo.DownstreamProtocolError)
		refusePath(w, info, st, err, serverName, prepare)
		return true
	}
	u := req.URL
	u.Path, u.RawPath = decoded, ""
	if u.EscapedPath() != path {
		u.RawPath = path
	}
	req.RequestURI = out
	info.Path = out
	if !redirect {
		return false
	}
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/grpc") {
		refusePath(w, info, st, pathnorm.ErrEscapedSlash, serverName, prepare)
		return true
	}
	st.HTTP.DownstreamRqRedirectedWithNormalizedPath.Inc()
	info.ResponseCodeDetails = pathNormalizationFailed
	w.Header()["Location"] = []string{out}
	router.WriteLocalReply(w, http.StatusTemporaryRedirect, "", serverName, prepare)
	return true
}

// refusePath answers 400 to a request whose path was refused, naming why.
func refusePath(w http.ResponseWriter, info *streaminfo.Info, st *Stats, why error, serverName string, prepare func(http.Header)) {
	st.HTTP.DownstreamRqFailedPathNormalization.Inc()
	info.ResponseCodeDetails = pathNormalizationFailed
	router.WriteLocalReply(w, http.StatusBadRequest, "invalid request path: "+why.Error()+"\n", serverName, prepare)
}

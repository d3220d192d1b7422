package connmgr

import (
	"net/http"

	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// injectFault runs the route's fault filter, Envoy's last filter before
// the router: it may delay the request (response flag DI) and may answer
// it with an abort status itself (FI, "fault filter abort"). It returns
// true when the request is finished: aborted, or abandoned by a client
// that left during the delay (DC, no response).
func (m *Manager) injectFault(s *stream, req *http.Request, rt *route.Route, snap *Snapshot, serverName string, prepare func(http.Header)) bool {
	info := &s.info
	res := rt.Fault.Run(req.Context(), req.Header, &m.faults, &snap.Stats.HTTP.Fault)
	if res.Delay > 0 {
		info.ResponseFlags.Set(streaminfo.DelayInjected)
	}
	switch {
	case res.ClientGone:
		info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
		info.ResponseCodeDetails = "downstream_remote_disconnect"
		return true
	case res.AbortStatus != 0:
		info.ResponseFlags.Set(streaminfo.FaultInjected)
		info.ResponseCodeDetails = "fault_filter_abort"
		router.WriteLocalReply(&s.rw, res.AbortStatus, "fault filter abort", serverName, prepare)
		return true
	}
	return false
}

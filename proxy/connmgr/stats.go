package connmgr

import (
	"net/http"

	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// requestStarted counts a request as it arrives (Envoy's downstream_rq_total
// and the per-protocol totals, and the active gauge).
func (s *Stats) requestStarted(req *http.Request) {
	h := s.HTTP
	h.DownstreamRqTotal.Inc()
	if req.ProtoMajor == 2 {
		h.DownstreamRqHTTP2Total.Inc()
	} else {
		h.DownstreamRqHTTP1Total.Inc()
	}
	h.DownstreamRqActive.Inc()
}

// requestFinished counts how a request ended, after its last byte. traceID
// is the request's trace when it is sampled, else zero.
func (s *Stats) requestFinished(info *streaminfo.Info, aborted bool, traceID stats.TraceID) {
	h := s.HTTP
	h.DownstreamRqActive.Dec()
	switch {
	case info.ResponseFlags.Has(streaminfo.DownstreamConnectionTermination):
		h.DownstreamRqRxReset.Inc()
	case aborted:
		h.DownstreamRqTxReset.Inc()
	}
	if info.ResponseFlags.Has(streaminfo.StreamIdleTimeout) {
		h.DownstreamRqIdleTimeout.Inc()
	}
	if info.DownstreamCodecError {
		h.DownstreamCxProtocolError.Inc()
	}
	if info.ResponseCode == 0 {
		// Nothing was sent (the client left first): Envoy counts no code.
		return
	}
	h.RecordResponse(info.ResponseCode)
	h.Responses.RecordTime(uint64(max(info.Duration.Milliseconds(), 0)), traceID)
	if s.Listener != nil {
		s.Listener.RecordResponse(info.ResponseCode)
	}
}

package router

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// tunnel completes a protocol upgrade (WebSocket and friends): the upstream
// answered 101 Switching Protocols, so the downstream connection is hijacked
// and bytes are copied both ways until either side closes. Only HTTP/1.1
// downstream connections can be upgraded; HTTP/2 extended CONNECT is not
// supported.
func tunnel(w http.ResponseWriter, fr *Request, res *http.Response) Outcome {
	info := fr.Info
	up, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		_ = res.Body.Close()
		localReply(w, fr, http.StatusBadGateway, streaminfo.UpstreamProtocolError, "upgrade_failed", "upstream upgrade failed")
		return Outcome{}
	}
	defer up.Close()
	if fr.Upgrade == "" || !strings.EqualFold(res.Header.Get("Upgrade"), fr.Upgrade) {
		localReply(w, fr, http.StatusBadGateway, streaminfo.UpstreamProtocolError, "upgrade_mismatch",
			fmt.Sprintf("upstream switched to protocol %q, but the client asked for %q", res.Header.Get("Upgrade"), fr.Upgrade))
		return Outcome{}
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		localReply(w, fr, http.StatusBadGateway, streaminfo.UpstreamProtocolError, "upgrade_not_supported", "protocol upgrade needs HTTP/1.1")
		return Outcome{}
	}
	defer conn.Close()
	info.ResponseCode = http.StatusSwitchingProtocols
	info.ResponseCodeDetails = "via_upstream"

	h := res.Header.Clone()
	h["Server"] = []string{fr.ServerName}
	if fr.PrepareResponse != nil {
		fr.PrepareResponse(h)
	}
	h.Del("Connection") // re-added below, exactly once
	if _, err := fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"); err != nil {
		return Outcome{}
	}
	if err := h.Write(brw); err != nil {
		return Outcome{}
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		return Outcome{}
	}
	if err := brw.Flush(); err != nil {
		return Outcome{}
	}

	errc := make(chan error, 2)
	go func() { // client → upstream, starting with what the server already buffered
		n, err := io.Copy(up, bufferedThen(brw.Reader, conn))
		info.BytesReceived += n
		errc <- err
	}()
	go func() { // upstream → client
		n, err := io.Copy(conn, up)
		info.BytesSent += n
		errc <- err
	}()
	firstErr := <-errc
	// One direction ended: close both so the other copy returns too.
	_ = conn.Close()
	_ = up.Close()
	<-errc //nolint:errcheck // the first error ended the tunnel; the second is its echo
	_ = firstErr
	return Outcome{}
}

// bufferedThen reads what br already holds, then r.
func bufferedThen(br *bufio.Reader, r io.Reader) io.Reader {
	if br.Buffered() == 0 {
		return r
	}
	return io.MultiReader(io.LimitReader(br, int64(br.Buffered())), r)
}

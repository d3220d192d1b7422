package listener

import "net/http"

// h2StackBytes is how much stack an HTTP/2 stream's goroutine gets before
// its handler runs: enough for routing and the upstream exchange, so that
// the stack does not grow again on the way.
const h2StackBytes = 12 << 10

// h2Handler runs the handler of one HTTP/2 stream. x/net starts a
// goroutine per stream, whose stack starts small (Go's average) and is
// copied to one twice its size each time the request goes deeper than it:
// routing, the router and the upstream HTTP/1 exchange grew it several
// times per request, each copy walking every frame on it: 7.7 % of the
// proxy's CPU under h2load -c4 -m100. Growing it once at the start, when
// it holds only a few frames, halves that (3.5 %, one copy per request).
// The HTTP/1 codec needs none of this: its connection goroutine keeps its
// stack from request to request.
type h2Handler struct{ h http.Handler }

func (h h2Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	growStack()
	h.h.ServeHTTP(w, r)
}

// stackSink is never set: it keeps growStack's frame from being optimised
// away.
var stackSink bool

// growStack has a frame of h2StackBytes, so calling it grows the
// goroutine's stack to hold that much once, in one copy.
//
//go:noinline
func growStack() {
	if stackSink {
		// Declared here, buf is zeroed only on a path never taken, but
		// still counts in the frame the prologue checks.
		var buf [h2StackBytes]byte
		useStack(buf[:])
	}
}

//go:noinline
func useStack([]byte) {}

package proxy

// Detecting a client that goes away while its request is judged or its
// response streams (issue 7: "If the client disconnects, the hold resolves as
// DENY (client gone)").
//
// The gate ends a STEP_UP or DEFER hold as "client gone" when the context
// given to Mediate is cancelled. Plain-HTTP proxy requests get that for free
// (net/http watches the connection once the body has been read), and so do
// HTTP/2 streams inside tunnels (x/net/http2 cancels a stream's context on
// RST_STREAM or when the connection dies). goproxy's own HTTP/1.x loop inside
// a MITM tunnel (goproxy v1.9.3 https.go, the "mitmWork" loop) reads one
// request, handles it and writes the answer before reading again, and the
// context it gives the request is cancelled only when the answer has been
// written. A curl, Python or Go HTTP/1.1 client killed during a hold left the
// hold waiting until its timeout.
//
// While an inner HTTP/1.x request is being judged, nobody reads the tunnel's
// client connection: the pipeline has read the body before calling Mediate,
// and goproxy reads the next request only after the answer. The same holds
// while an allowed request's response streams, as long as the request body
// came from memory (not the pass-through remainder, which the upstream
// transport reads from the client while the response may already stream) and
// the request is not a WebSocket upgrade. In those windows a watcher
// goroutine reads the raw client connection, much as net/http's
// connReader.backgroundRead does:
//
//   - EOF, a reset or any other read error means the client is gone: the
//     request's context is cancelled with ErrClientGone, which ends the hold
//     (Mediate's context) or the upstream request (the forwarded request's
//     context).
//   - Bytes that arrive are kept in the trackedConn and returned first by its
//     next Read, so nothing is lost. Unlike net/http, which stops at the first
//     byte, the watcher goes on reading (up to maxWatchAhead bytes): it reads
//     below TLS, where a client that closes cleanly first sends a close_notify
//     alert record, and only the EOF after it says the client is gone. A
//     client that pipelines a request and then closes its side is treated as
//     gone too; HTTP/1.1 pipelining with half-close is not something agents do.
//   - The watch ends when the request's answer is complete (or the request
//     is about to be forwarded with a body still on the wire): a read
//     deadline in the past interrupts the blocked Read, the watcher is joined,
//     and the deadline is cleared, all before goproxy reads again.
//
// The watch starts only when the window is still open after clientWatchDelay.
// Most ALLOW decisions and most responses finish sooner, so they pay for one
// timer and no goroutine or deadline change; a held request pays one
// goroutine. BenchmarkClientWatch puts the per-request cost of the watch at
// about 0.55 µs and 300 B started after the delay, against about 3.3 µs and
// 2.3 KB started at once (a goroutine, two deadline changes, a join).
// BenchmarkProxyAllow (64 keep-alive HTTP/1.1 tunnels, 2 shared cores) took
// 80-170 µs per request with either choice and without the watch; its
// run-to-run spread was larger than any difference between them. A client
// that disappears is noticed within clientWatchDelay plus the time its
// kernel takes to send FIN or RST.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// clientWatchDelay is how long a request may be judged or streamed
	// before its client connection is watched.
	clientWatchDelay = 50 * time.Millisecond
	// maxWatchAhead bounds the bytes a watcher reads ahead and keeps; past
	// it the client is evidently there and the watcher stops reading.
	maxWatchAhead = 64 << 10
	// watchReadSize is the watcher's read buffer.
	watchReadSize = 2 << 10
)

// aLongTimeAgo is a read deadline that interrupts a blocked Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// connWatch is one watch of a tunnel's client connection.
type connWatch struct {
	c      *trackedConn
	cancel context.CancelCauseFunc
	timer  *time.Timer
	done   chan struct{}

	mu      sync.Mutex
	stopped bool
	running bool
}

// watchClient starts watching c for the client going away once delay has
// passed (at once for 0); when it goes, cancel is called with an error
// wrapping ErrClientGone. The returned stop ends the watch; it returns only
// once no read of c by the watcher is in progress, so the caller may read c
// right after. stop is idempotent. Only one watch owns c at a time; a second
// concurrent watchClient does nothing.
func (c *trackedConn) watchClient(cancel context.CancelCauseFunc, delay time.Duration) (stop func()) {
	if !c.watching.CompareAndSwap(false, true) {
		return func() {}
	}
	w := &connWatch{c: c, cancel: cancel, done: make(chan struct{})}
	if delay <= 0 {
		w.running = true
		go w.run()
	} else {
		w.timer = time.AfterFunc(delay, w.start)
	}
	return w.stop
}

// start runs the watch on the timer's goroutine unless it was stopped first.
func (w *connWatch) start() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.mu.Unlock()
	w.run()
}

func (w *connWatch) run() {
	defer close(w.done)
	buf := make([]byte, watchReadSize)
	for {
		n, err := w.c.Conn.Read(buf)
		if n > 0 {
			w.c.pmu.Lock()
			w.c.pending = append(w.c.pending, buf[:n]...)
			w.c.hasPending.Store(true)
			full := len(w.c.pending) >= maxWatchAhead
			w.c.pmu.Unlock()
			if full {
				return
			}
		}
		if err == nil {
			continue
		}
		w.mu.Lock()
		stopped := w.stopped
		w.mu.Unlock()
		var ne net.Error
		if stopped || errors.As(err, &ne) && ne.Timeout() {
			// Our own deadline (or, should anyone else ever set one,
			// theirs): not a sign that the client left.
			return
		}
		w.cancel(fmt.Errorf("%w: %v", ErrClientGone, err))
		return
	}
}

func (w *connWatch) stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	running := w.running
	w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	if running {
		// goproxy never sets deadlines on the hijacked connection (and
		// net/http cleared its own on hijack), so clearing afterwards
		// restores what was there.
		_ = w.c.Conn.SetReadDeadline(aLongTimeAgo)
		<-w.done
		_ = w.c.Conn.SetReadDeadline(time.Time{})
	}
	w.c.watching.Store(false)
}

// watchTunnelClient cancels the returned context with ErrClientGone when the
// client of an HTTP/1.x request inside a MITM tunnel goes away (see the top
// of this file). For requests it cannot watch — plain-HTTP proxy requests and
// HTTP/2 streams, whose contexts net/http and x/net/http2 already cancel, or
// a proxy not started through Serve — it returns r's context and a no-op stop.
func watchTunnelClient(ctx context.Context, tun *tunnel, protoMajor int) (context.Context, func()) {
	if tun == nil || tun.conn == nil || protoMajor != 1 {
		return ctx, func() {}
	}
	wctx, cancel := context.WithCancelCause(ctx)
	stop := tun.conn.watchClient(cancel, clientWatchDelay)
	// cancel is not called on stop: the forwarded request keeps using wctx
	// until goproxy cancels its parent after the answer was written.
	return wctx, stop
}

// clientGoneCause returns the ErrClientGone cause of ctx's cancellation, or nil.
func clientGoneCause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil && errors.Is(c, ErrClientGone) {
		return c
	}
	return nil
}

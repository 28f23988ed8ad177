package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one request (connect, write and read of the whole
// response) when no timeout is configured.
const DefaultTimeout = 10 * time.Second

// Request is one HTTP/1.1 request. The Host, Content-Length and User-Agent
// headers are written by the Client; Header adds to them.
type Request struct {
	// Name is the name the request's latency and outcome are recorded
	// under, e.g. "GET /api/users/{id}". Empty means the name of the
	// operation that issues it (so a one-request operation needs none).
	Name string
	// Method is the HTTP method; empty means GET.
	Method string
	// Path is the path and query, starting with "/". It is appended to the
	// path of the target URL, if that has one.
	Path string
	// Header holds extra request headers, sent in order after the
	// client's own (see Client.SetHeader).
	Header []Header
	// Body is sent as is, with a Content-Length.
	Body []byte
	// Expect lists the statuses that count as success. Empty means any
	// status below 400. A 429 is always counted as throttled, never as
	// success or error.
	Expect []int
}

// Header is one HTTP header field.
type Header struct {
	Key, Value string
}

// Response is the part of an HTTP response a load test needs. It is owned by
// the Client and overwritten by its next Do: copy what must outlive that.
type Response struct {
	// Status is the HTTP status code, e.g. 200.
	Status int
	// Body is the response body, de-chunked.
	Body []byte

	hdr  []byte  // header keys and values, copied out of the read buffer
	hidx []int32 // offsets into hdr: keyStart, keyEnd, valStart, valEnd per field
}

// Header returns the value of the first response header field named key
// (case-insensitive), or "" if there is none.
func (r *Response) Header(key string) string {
	return string(r.HeaderBytes(key))
}

// HeaderBytes is Header without the copy; the slice is valid until the
// client's next Do.
func (r *Response) HeaderBytes(key string) []byte {
	for i := 0; i+3 < len(r.hidx); i += 4 {
		k := r.hdr[r.hidx[i]:r.hidx[i+1]]
		if len(k) == len(key) && equalFold(k, key) {
			return r.hdr[r.hidx[i+2]:r.hidx[i+3]]
		}
	}
	return nil
}

func (r *Response) reset() {
	r.Status = 0
	r.Body = r.Body[:0]
	r.hdr = r.hdr[:0]
	r.hidx = r.hidx[:0]
}

// target is a parsed base URL, shared by every client of a run.
type target struct {
	addr string // host:port to dial
	host string // Host header value
	path string // path prefix without the trailing slash
}

func parseTarget(base string) (*target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse target %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("target %q: scheme %q not supported (only http)", base, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("target %q: no host", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &target{addr: addr, host: u.Host, path: strings.TrimSuffix(u.EscapedPath(), "/")}, nil
}

// Client is a lean HTTP/1.1 client that keeps one connection to one target
// alive, the way one virtual user's browser or SDK would. It writes each
// request with a single write, parses only what a load test needs, reuses its
// buffers, and reconnects after an error. It reaches close to wrk's rate
// where net/http's client, with its pools, goroutines and per-request
// allocations, does not (see BenchmarkClientVsWrk).
//
// A Client is not safe for concurrent use, except Close, which may be called
// from any goroutine to abort a request in flight. In a run every worker owns
// one Client, and requests sent through it are recorded.
type Client struct {
	t       *target
	timeout time.Duration

	mu     sync.Mutex // guards conn and closed, for Close from another goroutine
	conn   net.Conn
	closed bool

	br      *bufio.Reader
	reused  bool          // conn has carried a request before
	used    time.Time     // when the last request ended (Do's clock reading)
	maxIdle time.Duration // a connection idle longer is not reused (DefaultMaxIdle)
	header  []byte        // "Key: value\r\n" lines sent with every request
	wbuf    []byte
	resp    Response

	w *worker // records requests; nil for a client made by NewClient
}

// NewClient returns a client for the base URL target, e.g.
// "http://127.0.0.1:8080". A timeout of 0 means DefaultTimeout. The client
// connects on its first request. Requests made through it are not recorded;
// a run gives each worker a recording client of its own.
func NewClient(target string, timeout time.Duration) (*Client, error) {
	t, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	return newClient(t, timeout), nil
}

func newClient(t *target, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Client{t: t, timeout: timeout, maxIdle: DefaultMaxIdle, wbuf: make([]byte, 0, 512)}
	c.SetHeader("User-Agent", "scalelab-loadgen")
	return c
}

// SetHeader sets a header sent with every later request of this client,
// replacing an earlier value for the same key. It is how a session carries
// its identity, e.g. SetHeader("Authorization", "Bearer "+token). An empty
// value removes the header.
func (c *Client) SetHeader(key, value string) {
	var out []byte
	for rest := c.header; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\r\n"))
		line := rest[:i+2]
		rest = rest[i+2:]
		if colon := bytes.IndexByte(line, ':'); colon == len(key) && equalFold(line[:colon], key) {
			continue
		}
		out = append(out, line...)
	}
	if value != "" {
		out = append(out, key...)
		out = append(out, ": "...)
		out = append(out, value...)
		out = append(out, "\r\n"...)
	}
	c.header = out
}

// Close closes the connection and makes every later Do fail. A Do blocked
// in another goroutine returns promptly.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// errClosed is returned by Do on a closed client; requests that end with it
// are not recorded, as they were cut off by the end of the run.
var errClosed = errors.New("loadgen: client closed")

// Do sends req and reads the whole response. The error is nil for a
// successful status, a *RequestError for a failed request (its Class says
// how it failed; an error status still comes with its Response), and the
// response of a throttled request (429) comes with a *RequestError of class
// ClassThrottled. In a run, every call is timed and recorded under the
// request's name: the first request of an operation from the operation's
// scheduled start, later ones from when they were sent.
func (c *Client) Do(req *Request) (*Response, error) {
	var base time.Time
	if c.w != nil {
		base = c.w.takeScheduled()
	}
	t0 := time.Now()
	if base.IsZero() {
		base = t0
	}
	err := c.roundTrip(req, t0)
	end := time.Now()
	c.used = end

	class := ""
	status := 0
	if err != nil {
		class = classify(err)
		if c.isClosed() {
			class, err = "", errClosed
		}
	} else {
		status = c.resp.Status
		if status == 429 {
			class = ClassThrottled
		} else if !expected(req.Expect, status) {
			class = statusClass(status)
		}
	}
	if c.w != nil {
		c.w.recordRequest(req, end.Sub(base), status, class, err == errClosed)
	}
	switch {
	case err == errClosed:
		return nil, err
	case err != nil:
		return nil, &RequestError{Request: c.name(req), Class: class, Err: err}
	case class != "":
		return &c.resp, &RequestError{Request: c.name(req), Class: class, Status: status}
	}
	return &c.resp, nil
}

func (c *Client) name(req *Request) string {
	switch {
	case req.Name != "":
		return req.Name
	case c.w != nil:
		return c.w.opName()
	}
	m := req.Method
	if m == "" {
		m = "GET"
	}
	return m + " " + req.Path
}

func expected(expect []int, status int) bool {
	if len(expect) == 0 {
		return status < 400
	}
	for _, s := range expect {
		if s == status {
			return true
		}
	}
	return false
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// roundTrip writes req and reads its response into c.resp, retrying once on
// a fresh connection when a kept-alive connection turns out to have been
// closed by the server before it answered (as servers do with idle
// connections) and the method is idempotent.
func (c *Client) roundTrip(req *Request, t0 time.Time) error {
	c.buildRequest(req)
	method := req.Method
	if method == "" {
		method = "GET"
	}
	for attempt := 0; ; attempt++ {
		// A server closes keep-alive connections left idle (Varnish after
		// 5 s): a request written into one that the server has already
		// closed fails, and one that is not idempotent cannot be sent
		// again. So a connection idle for a while is checked first, as
		// net/http's transport does with its reader, and replaced when
		// the server has closed it.
		//
		// The check cannot see a close the server has only decided on:
		// Varnish's timeout_idle (5 s) is enforced lazily, and a
		// connection idle for 5.5 s still looked open, then was reset
		// with the request unread (queue-jobs lost 6 of 180 requests so,
		// all POSTs). So a connection idle for longer than maxIdle, which
		// is below the idle timeouts servers use, is not used at all.
		if c.conn != nil && c.reused {
			if idle := t0.Sub(c.used); idle > staleAfter && (idle > c.maxIdle || peerClosed(c.conn)) {
				c.drop()
			}
		}
		if c.conn == nil {
			if err := c.dial(); err != nil {
				return err
			}
		}
		reused := c.reused
		// One deadline covers the write and the whole response.
		if err := c.conn.SetDeadline(t0.Add(c.timeout)); err != nil {
			c.drop()
			return err
		}
		c.reused = true
		if _, err := c.conn.Write(c.wbuf); err != nil {
			c.drop()
			if reused && attempt == 0 && !isTimeout(err) {
				continue
			}
			return err
		}
		keep, got, err := c.readResponse(method == "HEAD")
		if err != nil {
			c.drop()
			if reused && !got && attempt == 0 && idempotent(method) && !isTimeout(err) {
				continue
			}
			return err
		}
		if !keep {
			c.drop()
		}
		return nil
	}
}

// staleAfter is how long a connection may sit idle before it is checked
// for a close by the server before its next request. Under a busy load
// connections never sit that long, and the check costs no system call.
const staleAfter = 500 * time.Millisecond

// DefaultMaxIdle is how long a client keeps a connection idle for reuse:
// under the shortest idle timeout of the servers it meets (Varnish's
// timeout_idle and Node's keepAliveTimeout, 5 s), so that it never sends a
// request on a connection the server is about to close. A client that
// waits longer between requests pays a new connection, as a browser does
// after its own idle timeout.
const DefaultMaxIdle = 4 * time.Second

func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE":
		return true
	}
	return false
}

func (c *Client) dial() error {
	conn, err := net.DialTimeout("tcp", c.t.addr, c.timeout)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return errClosed
	}
	c.conn = conn
	c.reused = false
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// drop closes the connection after an error or a "Connection: close".
func (c *Client) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *Client) buildRequest(req *Request) {
	b := c.wbuf[:0]
	if req.Method == "" {
		b = append(b, "GET"...)
	} else {
		b = append(b, req.Method...)
	}
	b = append(b, ' ')
	b = append(b, c.t.path...)
	b = append(b, req.Path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.t.host...)
	b = append(b, "\r\n"...)
	b = append(b, c.header...)
	for _, h := range req.Header {
		b = append(b, h.Key...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	if len(req.Body) > 0 || req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, req.Body...)
	c.wbuf = b
}

var (
	errMalformed  = errors.New("malformed HTTP response")
	errBadChunked = errors.New("malformed chunked body")
)

// readResponse reads one response into c.resp. keep reports whether the
// connection may carry another request; got reports whether any byte of the
// response arrived (a request that got none may be retried).
func (c *Client) readResponse(head bool) (keep, got bool, err error) {
	r := &c.resp
	br := c.br
	for {
		r.reset()
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false, len(line) > 0, err
		}
		got = true
		// "HTTP/1.1 200 OK\r\n"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return false, got, errMalformed
		}
		keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise
		status := 0
		for _, d := range line[9:12] {
			if d < '0' || d > '9' {
				return false, got, errMalformed
			}
			status = status*10 + int(d-'0')
		}
		r.Status = status

		length, chunked := int64(-1), false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				if err == bufio.ErrBufferFull {
					err = errors.New("response header line too long")
				}
				return false, got, err
			}
			line = trimCRLF(line)
			if len(line) == 0 {
				break
			}
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return false, got, errMalformed
			}
			key, val := line[:colon], bytes.TrimSpace(line[colon+1:])
			switch {
			case len(key) == 14 && equalFold(key, "Content-Length"):
				n, err := strconv.ParseInt(string(val), 10, 64)
				if err != nil || n < 0 {
					return false, got, errMalformed
				}
				length = n
			case len(key) == 17 && equalFold(key, "Transfer-Encoding"):
				chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
			case len(key) == 10 && equalFold(key, "Connection"):
				if equalFold(val, "close") {
					keep = false
				} else if equalFold(val, "keep-alive") {
					keep = true
				}
			}
			ks := int32(len(r.hdr))
			r.hdr = append(r.hdr, key...)
			vs := int32(len(r.hdr))
			r.hdr = append(r.hdr, val...)
			r.hidx = append(r.hidx, ks, vs, vs, int32(len(r.hdr)))
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // an interim response: the real one follows
		}
		switch {
		case head || status == 204 || status == 304 || status == 101:
		case chunked:
			err = c.readChunked()
		case length >= 0:
			err = c.readN(length)
		default:
			// No length: the body runs to the end of the connection.
			keep = false
			r.Body, err = appendAll(r.Body[:0], br)
		}
		return keep, got, err
	}
}

func (c *Client) readN(n int64) error {
	r := &c.resp
	if int64(cap(r.Body)) < n {
		r.Body = make([]byte, n)
	}
	r.Body = r.Body[:n]
	_, err := io.ReadFull(c.br, r.Body)
	return err
}

func (c *Client) readChunked() error {
	r := &c.resp
	br := c.br
	r.Body = r.Body[:0]
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return errBadChunked
		}
		if size == 0 {
			// Trailer fields, up to an empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(trimCRLF(line)) == 0 {
					return nil
				}
			}
		}
		n := len(r.Body)
		r.Body = growTo(r.Body, n+int(size))
		if _, err := io.ReadFull(br, r.Body[n:]); err != nil {
			return err
		}
		crlf, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(trimCRLF(crlf)) != 0 {
			return errBadChunked
		}
	}
}

func growTo(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

func appendAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || (x|0x20) < 'a' || (x|0x20) > 'z' {
			return false
		}
	}
	return true
}

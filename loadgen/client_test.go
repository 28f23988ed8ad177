package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustClient(t *testing.T, target string, timeout time.Duration) *Client {
	t.Helper()
	c, err := NewClient(target, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("X-Auth", r.Header.Get("Authorization"))
			w.Header().Set("X-Extra", r.Header.Get("X-Extra"))
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush() // forces Transfer-Encoding: chunked
			}
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/big":
			io.WriteString(w, strings.Repeat("x", 100_000))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := mustClient(t, srv.URL, 0)
	c.SetHeader("Authorization", "Bearer one")
	c.SetHeader("Authorization", "Bearer two") // replaces

	tests := []struct {
		name       string
		req        Request
		wantStatus int
		wantBody   string
		wantClass  string
	}{
		{"post", Request{Method: "POST", Path: "/echo?x=1", Body: []byte(`{"a":1}`), Header: []Header{{"X-Extra", "yes"}}}, 201, `POST /echo?x=1 {"a":1}`, ""},
		{"put empty body", Request{Method: "PUT", Path: "/echo"}, 201, "PUT /echo ", ""},
		{"chunked", Request{Path: "/chunked"}, 200, "part0;part1;part2;", ""},
		{"connection close", Request{Path: "/close"}, 200, "bye", ""},
		{"after close", Request{Path: "/chunked"}, 200, "part0;part1;part2;", ""},
		{"no content", Request{Path: "/empty"}, 204, "", ""},
		{"not modified", Request{Path: "/notmodified", Expect: []int{200, 304}}, 304, "", ""},
		{"head", Request{Method: "HEAD", Path: "/big"}, 200, "", ""},
		{"big", Request{Path: "/big"}, 200, strings.Repeat("x", 100_000), ""},
		{"not found", Request{Path: "/nope"}, 404, "404 page not found\n", "http 404"},
		{"expected not found", Request{Path: "/nope", Expect: []int{404}}, 404, "404 page not found\n", ""},
		{"unexpected ok", Request{Path: "/big", Expect: []int{201}}, 200, strings.Repeat("x", 100_000), "http 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Do(&tt.req)
			var re *RequestError
			switch {
			case tt.wantClass == "" && err != nil:
				t.Fatalf("Do(%s) error %v", tt.req.Path, err)
			case tt.wantClass != "" && (!errors.As(err, &re) || re.Class != tt.wantClass):
				t.Fatalf("Do(%s) error %v, want class %q", tt.req.Path, err, tt.wantClass)
			}
			if resp.Status != tt.wantStatus {
				t.Errorf("Do(%s) status = %d, want %d", tt.req.Path, resp.Status, tt.wantStatus)
			}
			if string(resp.Body) != tt.wantBody {
				t.Errorf("Do(%s) body = %.60q, want %.60q", tt.req.Path, resp.Body, tt.wantBody)
			}
		})
	}

	resp, err := c.Do(&Request{Method: "POST", Path: "/echo"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"etag": `"v1"`, "X-AUTH": "Bearer two", "x-extra": "", "Content-Length": "11"} {
		if got := resp.Header(key); got != want {
			t.Errorf("Header(%q) = %q, want %q", key, got, want)
		}
	}
}

// A server closes idle keep-alive connections whenever it likes; the next
// request must not fail for that.
func TestClientReconnects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := mustClient(t, srv.URL, 0)
	for i := range 3 {
		if _, err := c.Do(&Request{Path: "/"}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		srv.CloseClientConnections()
	}
}

// A server that closes keep-alive connections idle for 100 ms, as Varnish
// does after 5 s: a POST, which is not retried on a dead connection, must
// not be written into one the server has closed while it sat idle.
func TestClientDoesNotSendIntoAnIdleClosedConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	c := mustClient(t, srv.URL, 0)
	for i := range 3 {
		if _, err := c.Do(&Request{Method: "POST", Path: "/", Body: []byte(`{}`)}); err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		time.Sleep(staleAfter + 200*time.Millisecond) // the server closes it meanwhile
	}
}

// A server that enforces its idle timeout lazily, as Varnish does (a
// connection idle for 5.5 s of its 5 s still looks open): a request that
// arrives on a connection idle too long is reset, not answered. The client
// must not send a POST on a connection idle for longer than maxIdle.
func TestClientDoesNotReuseAConnectionIdleTooLong(t *testing.T) {
	const serverIdle = 400 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // last: after the client and the listener are closed
	defer ln.Close()
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				last := time.Now()
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if time.Since(last) > serverIdle {
						conn.(*net.TCPConn).SetLinger(0) // close with a reset
						return
					}
					io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					last = time.Now()
				}
			})
		}
	})
	c := mustClient(t, "http://"+ln.Addr().String(), 5*time.Second)
	defer c.Close()
	c.maxIdle = 300 * time.Millisecond
	for i := range 3 {
		if _, err := c.Do(&Request{Method: "POST", Path: "/", Body: []byte(`{}`)}); err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		time.Sleep(staleAfter + 100*time.Millisecond) // idle past maxIdle and the server's timeout
	}
}

// A hand-written server covers what net/http never sends.
func TestClientParsesOddResponses(t *testing.T) {
	tests := []struct {
		name, raw string
		wantBody  string
		wantClass string
	}{
		{"interim 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", ""},
		{"chunk extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "abc", ""},
		{"no length, body to EOF", "HTTP/1.0 200 OK\r\n\r\nuntil eof", "until eof", ""},
		{"garbage", "SMTP ready\r\n\r\n", "", ClassOther},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "", ClassReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				for { // read the request head
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(conn, tt.raw)
			}()
			c := mustClient(t, "http://"+ln.Addr().String(), 5*time.Second)
			resp, err := c.Do(&Request{Method: "POST", Path: "/"}) // POST: no retry
			if tt.wantClass != "" {
				var re *RequestError
				if !errors.As(err, &re) || re.Class != tt.wantClass {
					t.Fatalf("Do() error %v, want class %q", err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("Do() error %v", err)
			}
			if string(resp.Body) != tt.wantBody {
				t.Errorf("Do() body = %q, want %q", resp.Body, tt.wantBody)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in               string
		addr, host, path string
		wantErr          bool
	}{
		{in: "http://127.0.0.1:8080", addr: "127.0.0.1:8080", host: "127.0.0.1:8080"},
		{in: "http://localhost", addr: "localhost:80", host: "localhost"},
		{in: "http://[::1]:9/api/", addr: "[::1]:9", host: "[::1]:9", path: "/api"},
		{in: "https://example.com", wantErr: true},
		{in: "127.0.0.1:8080", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseTarget(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseTarget(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.addr != tt.addr || got.host != tt.host || got.path != tt.path {
			t.Errorf("parseTarget(%q) = %+v, %v, want {%s %s %s}", tt.in, got, err, tt.addr, tt.host, tt.path)
		}
	}
}

func TestClientDoesNotAllocate(t *testing.T) {
	// A server that allocates nothing per request either, since
	// AllocsPerRun counts the whole process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(bareBody), bareBody))
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 { // the empty line after the head
				conn.Write(resp)
			}
		}
	}()
	c := mustClient(t, "http://"+ln.Addr().String(), 0)
	req := &Request{Path: "/users/1", Header: []Header{{"Accept", "application/json"}}}
	if _, err := c.Do(req); err != nil { // connect, size the buffers
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { c.Do(req) }); n > 0 {
		t.Errorf("Do allocates %v times per request, want 0", n)
	}
}

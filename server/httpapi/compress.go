package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/julienschmidt/httprouter"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compressMin is the smallest body worth compressing: below about 1 KiB
// the saving is a few hundred bytes at most, less than one TCP segment,
// and the encoder's setup costs more CPU than the bytes are worth.
const compressMin = 1024

// Content codings the API answers with.
const (
	codingGzip = "gzip"
	codingZstd = "zstd"
)

// tokenPath is the one route that is never compressed; see compress.
const tokenPath = "/api/v1/auth/token"

// compressor holds pools of encoders, so that a compressed response does
// not allocate a new one (a zstd encoder's tables are about 1 MiB at the
// default level).
type compressor struct {
	gzip sync.Pool // *gzip.Writer
	zstd sync.Pool // *zstd.Encoder
}

func newCompressor() *compressor {
	c := &compressor{}
	c.gzip.New = func() any {
		// Level 5 (klauspost's default) is the knee: level 9 saves a few
		// per cent more on JSON at three times the CPU.
		w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
		return w
	}
	c.zstd.New = func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithLowerEncoderMem(true))
		return w
	}
	return c
}

// compress wraps h so that its bodies over compressMin are sent gzip- or
// zstd-encoded when the request's Accept-Encoding allows, with
// Vary: Accept-Encoding on every response so that shared caches (Varnish)
// keep the encodings apart.
//
// The token endpoint is never compressed. BREACH (2013) recovers a secret
// from a compressed response that also reflects attacker-chosen input: the
// attacker varies the input and watches the compressed length shrink when
// a guess matches part of the secret. The token response carries a
// bearer token, and the request that produced it carries the login as
// typed; it is small anyway. No other /api/v1 response carries a secret:
// tokens travel in the Authorization header, and password hashes never
// leave the server. A route added later that puts a secret in a body must
// be left out here too.
func (c *compressor) compress(path string, h httprouter.Handle) httprouter.Handle {
	if path == tokenPath {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		coding := negotiateCoding(r.Header.Values("Accept-Encoding"))
		if r.Method == http.MethodHead {
			coding = "" // no body to encode
		}
		cw := &compressWriter{ResponseWriter: w, c: c, coding: coding, status: http.StatusOK}
		defer cw.finish()
		h(cw, r, ps)
	}
}

// negotiateCoding picks zstd or gzip from Accept-Encoding values (RFC 9110
// §12.5.3), or "" for none: zstd when it is allowed at least as much as
// gzip (on a 4.5 KiB list page it sends 484 bytes to gzip's 570 at about
// the same CPU, see BenchmarkCompress), "*"
// standing for both, q=0 forbidding.
func negotiateCoding(values []string) string {
	qGzip, qZstd, qAny := -1.0, -1.0, -1.0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch name {
			case codingGzip, "x-gzip":
				qGzip = q
			case codingZstd:
				qZstd = q
			case "*":
				qAny = q
			}
		}
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	if qZstd < 0 {
		qZstd = qAny
	}
	switch {
	case qZstd > 0 && qZstd >= qGzip:
		return codingZstd
	case qGzip > 0:
		return codingGzip
	}
	return ""
}

// compressWriter holds back the first compressMin bytes of a body: if the
// handler ends before it writes more, the body goes out as it is; past
// that, the headers are fixed up and the rest streams through an encoder.
type compressWriter struct {
	http.ResponseWriter
	c       *compressor
	coding  string
	status  int
	header  bool // WriteHeader was called by the handler
	sent    bool // the headers went to the client
	buf     bytes.Buffer
	enc     io.WriteCloser
	release func()
}

func (w *compressWriter) WriteHeader(code int) {
	if w.header || w.sent {
		return
	}
	w.status, w.header = code, true
	if code < http.StatusOK || code == http.StatusNoContent || code == http.StatusNotModified {
		w.sendHeader()
	}
}

func (w *compressWriter) Write(b []byte) (int, error) {
	if w.enc != nil {
		return w.enc.Write(b)
	}
	if w.sent || w.coding == "" {
		w.sendHeader()
		return w.ResponseWriter.Write(b)
	}
	w.buf.Write(b)
	if w.buf.Len() < compressMin {
		return len(b), nil
	}
	if !w.compressible() {
		w.sendHeader()
		_, err := w.ResponseWriter.Write(w.buf.Bytes())
		w.buf.Reset()
		return len(b), err
	}
	w.startEncoder()
	_, err := w.enc.Write(w.buf.Bytes())
	w.buf.Reset()
	return len(b), err
}

// compressible reports whether the body may be encoded: not one the
// handler encoded itself (an export file), and only JSON.
func (w *compressWriter) compressible() bool {
	if w.coding == "" {
		return false
	}
	h := w.ResponseWriter.Header()
	if h.Get("Content-Encoding") != "" {
		return false
	}
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/problem+json")
}

func (w *compressWriter) startEncoder() {
	h := w.ResponseWriter.Header()
	h.Set("Content-Encoding", w.coding)
	h.Del("Content-Length")
	// The encoded bytes differ from the identity ones, so a strong
	// validator no longer names them; a weak one still matches
	// If-None-Match, which compares weakly (RFC 9110 §8.8.3.2).
	if tag := h.Get("ETag"); tag != "" && !strings.HasPrefix(tag, "W/") {
		h.Set("ETag", "W/"+tag)
	}
	w.sendHeader()
	switch w.coding {
	case codingZstd:
		enc := w.c.zstd.Get().(*zstd.Encoder)
		enc.Reset(w.ResponseWriter)
		w.enc, w.release = enc, func() { w.c.zstd.Put(enc) }
	default:
		enc := w.c.gzip.Get().(*gzip.Writer)
		enc.Reset(w.ResponseWriter)
		w.enc, w.release = enc, func() { w.c.gzip.Put(enc) }
	}
}

func (w *compressWriter) sendHeader() {
	if w.sent {
		return
	}
	w.sent = true
	addVary(w.ResponseWriter.Header())
	w.ResponseWriter.WriteHeader(w.status)
}

// finish sends what is held back, or closes the encoder.
func (w *compressWriter) finish() {
	if w.enc != nil {
		w.enc.Close()
		w.release()
		return
	}
	w.sendHeader()
	if w.buf.Len() > 0 {
		w.ResponseWriter.Write(w.buf.Bytes())
	}
}

// Flush sends what is buffered so far; a streamed list page calls it.
func (w *compressWriter) Flush() {
	if w.enc == nil && !w.sent {
		if w.buf.Len() >= compressMin && w.compressible() {
			w.startEncoder()
			w.enc.Write(w.buf.Bytes())
			w.buf.Reset()
		} else {
			w.sendHeader()
			w.ResponseWriter.Write(w.buf.Bytes())
			w.buf.Reset()
		}
	}
	if f, ok := w.enc.(interface{ Flush() error }); ok {
		f.Flush()
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// addVary adds Accept-Encoding to h's Vary in the same header line: some
// caches (Varnish among them) read only the first Vary line.
func addVary(h http.Header) {
	v := h.Get("Vary")
	switch {
	case v == "":
		h.Set("Vary", "Accept-Encoding")
	case !strings.Contains(strings.ToLower(v), "accept-encoding"):
		h.Set("Vary", v+", Accept-Encoding")
	}
}

func (w *compressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

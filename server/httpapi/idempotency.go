package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
)

// Safe retries with Idempotency-Key (docs/api.md).
//
// A write sent with an Idempotency-Key header is applied once, however
// often it is sent: the first request with a key claims it in the store,
// runs, and saves its answer (status, the headers that describe it, body)
// for server.IdempotencyTTL; a retry with the same key, credentials,
// method and path gets that answer again, marked Idempotent-Replayed:
// true. A retry that arrives while the first request still runs gets 409
// with Retry-After; the same key with another body gets 422.
//
// An answer of 500 or more is not kept: the key is released and a retry
// runs the request again. That is safe for the answers the store gives when
// a write was not applied (503 when the primary is down or a write missed
// its deadline: a write that answered 503 cannot commit later, see
// server/postgres's write deadlines). A crash between a write's commit and
// the saving of its answer leaves the claim without an answer: retries get
// 409 until the claim's lease (idempotencyLease) is over, then run the
// request again. The claim and the answer are kept in statements of their
// own, not in the write's transaction.

// idempotencyLease is how long a claim holds off retries while its
// request runs: longer than any write may take (the store's write deadline
// is 2 s, clients' timeouts about 10 s).
const idempotencyLease = 30 * time.Second

// savedHeaders are the response headers a replayed answer repeats.
var savedHeaders = []string{"Content-Type", "Location", "ETag", "Cache-Control"}

// idempotent wraps h, a write route, with Idempotency-Key handling. A
// store without server.IdempotencyStore leaves h as it is.
func (a *api) idempotent(h httprouter.Handle) httprouter.Handle {
	keys, ok := a.store.(server.IdempotencyStore)
	if !ok {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		values := r.Header.Values("Idempotency-Key")
		if len(values) == 0 {
			h(w, r, ps)
			return
		}
		if len(values) > 1 || !validIdempotencyKey(values[0]) {
			writeProblem(w, http.StatusBadRequest, "Idempotency-Key must be one header of 1 to 255 visible ASCII characters", nil)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil || len(body) > MaxBodyBytes {
			h(w, r, ps) // the handler answers the broken or oversized body
			return
		}
		id, fp := idempotencyID(r, values[0]), requestFingerprint(r, body)
		saved, err := keys.ClaimIdempotencyKey(r.Context(), id, fp, idempotencyLease)
		if err != nil {
			if server.ErrorCode(err) == server.ECONFLICT {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, r, a.log, err)
			return
		}
		if saved != nil {
			replay(w, saved)
			return
		}
		rec := &responseRecorder{ResponseWriter: w}
		h(rec, r, ps)
		// The answer is the request's now, whether or not its client is
		// still there to read it.
		ctx := context.WithoutCancel(r.Context())
		if rec.status == 0 || rec.status >= 500 {
			if err := keys.ReleaseIdempotencyKey(ctx, id); err != nil {
				a.log.WarnContext(ctx, "idempotency key not released; retries wait for its lease", "err", err)
			}
			return
		}
		if err := keys.SaveIdempotentResponse(ctx, id, rec.saved()); err != nil {
			a.log.WarnContext(ctx, "idempotent answer not saved; retries wait for its lease", "err", err)
		}
	}
}

// validIdempotencyKey: 1 to 255 visible ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotencyID names a key in its scope: the request's credentials (a
// token names its user; no token, anyone), method and path. The store
// keeps only the hash, never a token.
func idempotencyID(r *http.Request, key string) string {
	h := sha256.New()
	for _, s := range []string{r.Header.Get("Authorization"), r.Method, r.URL.Path, key} {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requestFingerprint identifies what a request asks: its query and body.
func requestFingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	io.WriteString(h, r.URL.RawQuery)
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// replay writes a saved answer again.
func replay(w http.ResponseWriter, s *server.SavedResponse) {
	h := w.Header()
	for k, v := range s.Header {
		h.Set(k, v)
	}
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(s.Status)
	w.Write(s.Body)
}

// responseRecorder passes a response through and keeps a copy.
type responseRecorder struct {
	http.ResponseWriter
	status int
	header map[string]string
	body   bytes.Buffer
}

func (r *responseRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
		r.header = map[string]string{}
		for _, k := range savedHeaders {
			if v := r.Header().Get(k); v != "" {
				r.header[k] = v
			}
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *responseRecorder) saved() server.SavedResponse {
	return server.SavedResponse{Status: r.status, Header: r.header, Body: bytes.Clone(r.body.Bytes())}
}

package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"

	"scalelab/server"
)

// marshalJSON encodes v as JSON without HTML escaping. json.Marshal writes
// <, > and & as \u003c, \u003e and \u0026, six bytes for one: a record
// of 1 MiB of '<' became a 6 MiB response (issue 9, finding 2). Responses
// are application/json, never HTML, so the escaping protects nothing.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// writeRecordPage streams a page of records: the envelope, then one record
// at a time through a small buffer, so the response never exists in memory
// whole. The store has already bounded the page (server.MaxPageBytes).
// Record data is JSON the store validated on write, so encoding cannot fail
// but for a broken connection; a failure past the status line can only cut
// the body short, and is logged.
func (a *api) writeRecordPage(w http.ResponseWriter, r *http.Request, page *server.RecordPage) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	bw.WriteString(`{"items":[`)
	for i := range page.Items {
		if i > 0 {
			bw.WriteByte(',')
		}
		// Encode appends a newline, which JSON allows between tokens.
		if err := enc.Encode(newRecordView(&page.Items[i])); err != nil {
			a.log.ErrorContext(r.Context(), "encode record page", "path", r.URL.Path, "err", err)
			return
		}
	}
	bw.WriteString(`],"next_cursor":`)
	if page.NextCursor == "" {
		bw.WriteString("null")
	} else if err := enc.Encode(page.NextCursor); err != nil {
		a.log.ErrorContext(r.Context(), "encode record page", "path", r.URL.Path, "err", err)
		return
	}
	bw.WriteString("}")
	bw.Flush()
}

// quotaProblemType names the problem of a record write refused by the
// user's quota (--quota-records, --quota-bytes): 409, since the request is
// fine but conflicts with what the user already stores; deleting records
// resolves it.
const quotaProblemType = "urn:scalelab:problem:quota-exceeded"

// writeQuotaProblem writes the 409 quota problem.
func writeQuotaProblem(w http.ResponseWriter, detail string) {
	body, _ := marshalJSON(problem{Type: quotaProblemType, Title: "Quota Exceeded", Status: http.StatusConflict, Detail: detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	w.WriteHeader(http.StatusConflict)
	w.Write(body)
}

package httpapi

import (
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
	"scalelab/server/jobs"
)

// exportView is GET /api/v1/users/{id}/exports/{job_id}.
type exportView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// File is the URL of the gzip-compressed JSON file, once done.
	File  *string `json:"file"`
	Error string  `json:"error,omitempty"`
}

func exportURL(uid string, id int64) string {
	return "/api/v1/users/" + uid + "/exports/" + strconv.FormatInt(id, 10)
}

// noQueue answers 501 where there is no queue: the SQLite store of phase
// 1 has no River (River's drivers need Postgres for this project's use),
// and an export run inside the request would hold a connection and a
// core for as long as the user's data takes to write.
func noQueue(w http.ResponseWriter) {
	writeProblem(w, http.StatusNotImplemented, "exports need the job queue, which runs on PostgreSQL (phase 4); this server has none", nil)
}

func jobIDParam(ps httprouter.Params) (int64, error) {
	id, err := strconv.ParseInt(ps.ByName("job_id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, server.Errorf(server.ENOTFOUND, "export %q not found", ps.ByName("job_id"))
	}
	return id, nil
}

// handleCreateExport: POST /api/v1/users/{id}/exports → 202 + Location.
func (a *api) handleCreateExport() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, ok := a.ownerParams(w, r, ps)
		if !ok {
			return
		}
		if a.queue == nil {
			noQueue(w)
			return
		}
		id, err := a.queue.EnqueueExport(r.Context(), uid)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		loc := exportURL(uid, id)
		w.Header().Set("Location", loc)
		writeJSON(w, r, a.log, http.StatusAccepted, exportView{ID: strconv.FormatInt(id, 10), Status: jobs.StatusQueued})
	}
}

// exportParams checks an export job's route: the caller owns the user,
// a queue exists, and the job id parses; otherwise it has answered.
func (a *api) exportParams(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (uid string, id int64, ok bool) {
	uid, ok = a.ownerParams(w, r, ps)
	if !ok {
		return "", 0, false
	}
	if a.queue == nil {
		noQueue(w)
		return "", 0, false
	}
	id, err := jobIDParam(ps)
	if err != nil {
		a.writeV1Error(w, r, err)
		return "", 0, false
	}
	return uid, id, true
}

// handleGetExport: GET /api/v1/users/{id}/exports/{job_id} → the status.
func (a *api) handleGetExport() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, id, ok := a.exportParams(w, r, ps)
		if !ok {
			return
		}
		st, err := a.queue.ExportStatus(r.Context(), uid, id)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		v := exportView{ID: strconv.FormatInt(id, 10), Status: st.Status}
		if st.Status == jobs.StatusDone {
			f := exportURL(uid, id) + "/file"
			v.File = &f
		}
		if st.Status == jobs.StatusFailed {
			// The job's error text stays in the log: it can name hosts.
			v.Error = "the export failed; start another"
		}
		writeJSON(w, r, a.log, http.StatusOK, v)
	}
}

// handleGetExportFile: GET …/exports/{job_id}/file → the file itself, as
// application/gzip (a download, not a JSON response encoded on the way:
// the bytes are stored compressed, and a client that does not take gzip
// still gets the file it asked for).
func (a *api) handleGetExportFile() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, id, ok := a.exportParams(w, r, ps)
		if !ok {
			return
		}
		f, err := a.queue.ExportFile(r.Context(), uid, id)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/gzip")
		h.Set("Content-Disposition", `attachment; filename="export-`+strconv.FormatInt(id, 10)+`.json.gz"`)
		h.Set("Content-Length", strconv.Itoa(len(f.Body)))
		w.WriteHeader(http.StatusOK)
		w.Write(f.Body)
	}
}

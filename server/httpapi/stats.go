package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
)

// statsStore is a store that serves GET /api/v1/stats.
type statsStore interface {
	Stats(ctx context.Context) (*server.Stats, error)
}

// cacheStats lets the CDN keep the stats for a minute: they change only
// when the views are refreshed, and their age is in the body.
const cacheStats = "public, s-maxage=60, max-age=0"

type statsView struct {
	Users int64          `json:"users"`
	Days  []dayStatsView `json:"days"`
	AsOf  time.Time      `json:"as_of"`
	// AgeSeconds is how old the figures were when served.
	AgeSeconds float64 `json:"age_seconds"`
}

type dayStatsView struct {
	Day     string `json:"day"` // YYYY-MM-DD, UTC
	SignUps int64  `json:"signups"`
	Records int64  `json:"records"`
}

// handleStats answers GET /api/v1/stats: users in total, sign-ups and
// records per day over the last server.StatsDays days, and as_of, when
// they were computed. Public and cacheable, with an ETag of the figures.
func (a *api) handleStats() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		ss, ok := a.store.(statsStore)
		if !ok {
			writeProblem(w, http.StatusNotFound, "this store serves no stats", nil)
			return
		}
		st, err := ss.Stats(r.Context())
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		v := statsView{Users: st.Users, Days: make([]dayStatsView, len(st.Days)), AsOf: st.AsOf.UTC()}
		for i, d := range st.Days {
			v.Days[i] = dayStatsView{Day: d.Day.UTC().Format(time.DateOnly), SignUps: d.SignUps, Records: d.Records}
		}
		// The ETag covers the figures and as_of, not the age, which
		// changes every moment.
		figures, err := marshalJSON(struct {
			Users int64
			Days  []dayStatsView
			AsOf  time.Time
		}{v.Users, v.Days, v.AsOf})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		tag := etag(figures)
		h := w.Header()
		h.Set("Cache-Control", cacheStats)
		h.Set("ETag", tag)
		if etagMatch(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		v.AgeSeconds = max(0, time.Since(v.AsOf).Seconds())
		writeJSON(w, r, a.log, http.StatusOK, v)
	}
}

package flows

import (
	"context"
	"net/http"
	"testing"
)

// A user deleted through app-1 has tokens that stop working at once on
// every other instance, although each of them had the user in its L1 and
// L2 had it too: every route answers 401, none 200 (a stale L1 entry) or
// 404 (the token accepted, the user then missing).
func TestDeletedUsersTokenStopsWorkingOnEveryInstance(t *testing.T) {
	top := phase3.Topology(t)
	apps := appURLs(top)
	const rounds = 5 // each round races the delete's invalidation anew
	refused, total := 0, 0
	for round := range rounds {
		u := signUp(t, top.EntryURL)
		waitReplicated(t, top, u.ID, 1)
		for _, a := range apps {
			mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token}, http.StatusOK)
			mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), XFF: clientAddr()}, http.StatusOK)
		}
		mustSend(t, request{Method: http.MethodDelete, URL: userURL(apps[0], u.ID), Token: u.Token}, http.StatusNoContent)
		for i, a := range apps[1:] {
			calls := []request{
				{Method: http.MethodGet, URL: userURL(a, u.ID)},
				{Method: http.MethodPut, URL: userURL(a, u.ID), Body: map[string]any{"profile": map[string]string{"name": "ghost"}}},
				{Method: http.MethodGet, URL: userURL(a, u.ID) + "/data"},
				{Method: http.MethodPost, URL: userURL(a, u.ID) + "/data", Body: map[string]any{"data": "ghost"}},
			}
			for _, c := range calls {
				c.Token = u.Token
				total++
				resp, err := send(context.Background(), c)
				switch {
				case err != nil:
					t.Errorf("round %d, app-%d: %s %s after the delete: %v", round, i+2, c.Method, c.URL, err)
				case resp.Status != http.StatusUnauthorized:
					t.Errorf("round %d, app-%d: %s %s with the deleted user's token = %d %s, want 401", round, i+2, c.Method, c.URL, resp.Status, resp.Body)
				default:
					refused++
				}
			}
		}
	}
	t.Logf("%d of %d requests with a deleted user's token on app-2 and app-3 refused with 401", refused, total)
	if refused != total {
		t.Errorf("refused %d, want %d", refused, total)
	}
}

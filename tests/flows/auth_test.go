package flows

import (
	"context"
	"encoding/json"
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

// A password change through app-1 ends every token issued before it, on
// every instance, although each of them had the user in its L1 (and L2 had
// it too) with the old password's stamp; a token issued after it works on
// every instance at once, even one whose caches or replica are behind.
func TestPasswordChangeEndsTokensOnEveryInstance(t *testing.T) {
	top := phase3.Topology(t)
	apps := appURLs(top)
	const rounds = 5 // each round races the change's invalidation anew
	for round := range rounds {
		u := signUp(t, top.EntryURL)
		waitReplicated(t, top, u.ID, 1)
		older := mustToken(t, apps[1], u.Login, u.Password)
		for _, a := range apps {
			for _, tok := range []string{u.Token, older} {
				mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: tok}, http.StatusOK)
			}
		}
		newPassword := u.Password + " changed"
		mustSend(t, request{Method: http.MethodPut, URL: userURL(apps[0], u.ID), Token: u.Token,
			Body: map[string]any{"password": newPassword, "current_password": u.Password}}, http.StatusOK)
		for i, a := range apps {
			for _, c := range []request{
				{Method: http.MethodGet, URL: userURL(a, u.ID)},
				{Method: http.MethodPut, URL: userURL(a, u.ID), Body: map[string]any{"profile": map[string]string{"name": "intruder"}}},
				{Method: http.MethodGet, URL: userURL(a, u.ID) + "/data"},
			} {
				for _, tok := range []string{u.Token, older} {
					c.Token = tok
					resp, err := send(context.Background(), c)
					switch {
					case err != nil:
						t.Errorf("round %d, app-%d: %s %s after the password change: %v", round, i+1, c.Method, c.URL, err)
					case resp.Status != http.StatusUnauthorized:
						t.Errorf("round %d, app-%d: %s %s with a token issued before the password change = %d %s, want 401",
							round, i+1, c.Method, c.URL, resp.Status, resp.Body)
					}
				}
			}
		}
		fresh := mustToken(t, apps[2], u.Login, newPassword)
		for _, a := range apps {
			mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: fresh}, http.StatusOK)
		}
	}
}

// mustToken gets a token for login through base, from a fresh client
// address.
func mustToken(t testing.TB, base, login, password string) string {
	t.Helper()
	resp := mustSend(t, request{Method: http.MethodPost, URL: base + "/api/v1/auth/token", XFF: clientAddr(),
		Body: map[string]string{"login": login, "password": password}}, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token request answered %s: %v", resp.Body, err)
	}
	return tok.AccessToken
}

package flows

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Rate limits are shared by instances: a client that splits a burst over
// two instances gets the budget once, not once per instance.
//
// The phase's --rate-limit (1000/s, burst 2000) is too large to spend
// quickly, so the test starts two instances of its own with
// --rate-limit 5 (burst 10; anonymous reads 2/s, burst 4) on the phase's
// Postgres primary and Redis, sharing a token secret as the phase's
// instances do.
func TestRateLimitsAreSharedAcrossInstances(t *testing.T) {
	top := phase3.Topology(t)
	const rate = 5
	flags := []string{
		"--db", top.PrimaryURL, "--redis", top.RedisAddr,
		"--rate-limit", strconv.Itoa(rate), "--login-limit", "0",
		"--token-secret", "hex:" + randomHex(32),
		"--trusted-proxy", "127.0.0.1/32",
	}
	a := startServer(t, "limits-a", flags...)
	b := startServer(t, "limits-b", flags...)

	tests := []struct {
		name  string
		burst int // the budget's burst; its rate is burst/2 per second
		req   func(u *user, xff string) request
	}{
		{"token", 2 * rate, func(u *user, _ string) request {
			return request{Method: http.MethodGet, Token: u.Token, XFF: clientAddr()} // a new address each time: the token decides
		}},
		{"anonymous address", 2 * max(1, rate/2), func(u *user, xff string) request {
			return request{Method: http.MethodGet, XFF: xff}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := signUp(t, a)
			xff := clientAddr()
			const sent = 40
			allowed := map[string]int{}
			refused := map[string]int{}
			firstRefusal := 0
			start := time.Now()
			for i := range sent {
				base := a
				if i%2 == 1 {
					base = b
				}
				r := tt.req(u, xff)
				r.URL = userURL(base, u.ID)
				resp, err := send(context.Background(), r)
				if err != nil {
					t.Fatalf("request %d to %s: %v", i, base, err)
				}
				switch resp.Status {
				case http.StatusOK:
					allowed[base]++
				case http.StatusTooManyRequests:
					refused[base]++
					if firstRefusal == 0 {
						firstRefusal = i + 1
						if got, want := resp.Header.Get("RateLimit-Limit"), strconv.Itoa(tt.burst); got != want {
							t.Errorf("429 RateLimit-Limit = %q, want %q", got, want)
						}
						if resp.Header.Get("Retry-After") == "" {
							t.Errorf("429 without Retry-After")
						}
					}
				default:
					t.Fatalf("request %d to %s = %d %s, want 200 or 429", i, base, resp.Status, resp.Body)
				}
			}
			elapsed := time.Since(start)
			total := allowed[a] + allowed[b]
			// GCRA lets the burst through at once, then rate/s: what the
			// clock gave back while the requests ran may pass too.
			refill := int(math.Ceil(elapsed.Seconds() * float64(tt.burst) / 2))
			t.Logf("%d requests alternating over two instances in %v: allowed %d (a %d, b %d), refused %d (a %d, b %d), first 429 at request %d; burst %d, refill allowance %d",
				sent, elapsed.Round(time.Millisecond), total, allowed[a], allowed[b], refused[a]+refused[b], refused[a], refused[b], firstRefusal, tt.burst, refill)
			if total < tt.burst || total > tt.burst+refill {
				t.Errorf("allowed %d requests in all, want %d to %d: one shared budget (per-instance budgets would allow %d)",
					total, tt.burst, tt.burst+refill, 2*tt.burst)
			}
			if refused[a] == 0 || refused[b] == 0 {
				t.Errorf("refused a %d, b %d; want both instances refusing once the shared budget is spent", refused[a], refused[b])
			}
		})
	}
}

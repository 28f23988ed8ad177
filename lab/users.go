package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"scalelab/loadgen"
	"scalelab/server"
)

// Users are the accounts a run's simulated clients read, write and sign in
// as: user i has ID(i) and signs in as Login(i) with Password.
type Users struct {
	// IDs and Logins are user i's id and login; both nil for the lab's
	// seeded users, whose ids and logins are computed from i
	// (server.SeedUserID, server.SeedUsername).
	IDs, Logins []string
	Password    string
	// N is the number of users.
	N int
}

// SeededUsers are the first n users that lab seeding (scalelab seed, or a
// run's Seed step) writes into a database.
func SeededUsers(n int) *Users { return &Users{N: n, Password: server.SeedPassword} }

// ID returns user i's id.
func (u *Users) ID(i int) string {
	if u.IDs == nil {
		return server.SeedUserID(i)
	}
	return u.IDs[i]
}

// Login returns user i's login (a username).
func (u *Users) Login(i int) string {
	if u.Logins == nil {
		return server.SeedUsername(i)
	}
	return u.Logins[i]
}

// Prefix returns the first n users.
func (u *Users) Prefix(n int) *Users {
	if n >= u.N {
		return u
	}
	p := &Users{Password: u.Password, N: n}
	if u.IDs != nil {
		p.IDs, p.Logins = u.IDs[:n], u.Logins[:n]
	}
	return p
}

// usersFile is the JSON form of Users that a run which signed its users up
// through the API writes, so that later runs (and the generators of a
// split run) can act as the same users: `--users-file`.
type usersFile struct {
	// Target and API say where the users were signed up.
	Target string `json:"target"`
	API    string `json:"api"`
	// Password is every user's password: these are load-test accounts.
	Password string      `json:"password"`
	Users    []userEntry `json:"users"`
}

type userEntry struct {
	ID    string `json:"id"`
	Login string `json:"login"`
}

// WriteUsersFile writes u as a users file (mode 0600: it holds the
// users' password), recording the target and API path they live at.
func WriteUsersFile(path, target, api string, u *Users) error {
	f := usersFile{Target: target, API: api, Password: u.Password, Users: make([]userEntry, u.N)}
	for i := range u.N {
		f.Users[i] = userEntry{ID: u.ID(i), Login: u.Login(i)}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	return nil
}

// ReadUsersFile reads a users file written by WriteUsersFile; target is
// the URL it was written for.
func ReadUsersFile(path string) (u *Users, target string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", invalidf("read users file: %w", err)
	}
	var f usersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, "", invalidf("users file %s: %w", path, err)
	}
	if len(f.Users) == 0 || f.Password == "" {
		return nil, "", invalidf("users file %s: no users or no password", path)
	}
	u = &Users{Password: f.Password, N: len(f.Users)}
	for i, e := range f.Users {
		if !server.ValidID(e.ID) || e.Login == "" {
			return nil, "", invalidf("users file %s: user %d has id %q and login %q", path, i, e.ID, e.Login)
		}
		u.IDs = append(u.IDs, e.ID)
		u.Logins = append(u.Logins, e.Login)
	}
	return u, f.Target, nil
}

// SignUpOptions tune SignUpUsers.
type SignUpOptions struct {
	// Rate caps sign-ups per second; 0 leaves it to the target, which
	// answers 503 or 429 with Retry-After when it cannot keep up (each
	// sign-up costs the server an argon2id hash).
	Rate float64
	// Concurrency is how many sign-ups are in flight at once; 0 means 4.
	Concurrency int
	// Progress receives a progress bar; nil discards it.
	Progress io.Writer
}

// maxSignUpAttempts bounds the tries of one sign-up that the target keeps
// answering with 429 or 503, or not at all.
const maxSignUpAttempts = 20

// SignUpUsers creates n users through the API at target (api is the user
// collection's path, /api/users or /api/v1/users), as real clients sign up:
// concurrently, at most o.Rate a second, waiting as long as a 429's or
// 503's Retry-After asks, and trying again after a timeout. Each user gets
// a login unique to this call and one shared, random password. User i
// signs up from its own synthetic client address, as in the run
// (syntheticClientAddr).
func SignUpUsers(ctx context.Context, target, api string, n int, o SignUpOptions) (*Users, error) {
	if n <= 0 {
		return nil, invalidf("sign up %d users: want at least one", n)
	}
	tag, err := randomTag()
	if err != nil {
		return nil, err
	}
	u := &Users{N: n, IDs: make([]string, n), Logins: make([]string, n), Password: "scalelab-target-" + tag}
	conc := o.Concurrency
	if conc <= 0 {
		conc = 4
	}
	limit := rate.NewLimiter(rate.Inf, conc)
	if o.Rate > 0 {
		limit = rate.NewLimiter(rate.Limit(o.Rate), 1)
	}
	w := o.Progress
	if w == nil {
		w = io.Discard
	}
	bar := loadgen.StartBar(ctx, w, "sign up", int64(n))
	defer bar.Stop()

	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range min(conc, n) {
		g.Go(func() error {
			c, err := loadgen.NewClient(target, 30*time.Second)
			if err != nil {
				return invalid{err}
			}
			defer c.Close()
			c.SetHeader("Content-Type", "application/json")
			for i := range next {
				id, login, err := signUp(gctx, c, limit, api, i, "lt-"+tag+"-"+strconv.Itoa(i), u.Password)
				if err != nil {
					return fmt.Errorf("sign up user %d of %d: %w", i, n, err)
				}
				u.IDs[i], u.Logins[i] = id, login
				bar.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return u, nil
}

// signUp creates user i with login base (or base-rN after a transport
// failure: the POST may have created the user, whose id is then lost, so
// the retry takes a fresh login and leaves that one behind), retrying
// while the target says to wait. It returns the id and the login.
func signUp(ctx context.Context, c *loadgen.Client, limit *rate.Limiter, api string, i int, base, password string) (id, login string, err error) {
	c.SetHeader("X-Forwarded-For", syntheticClientAddr(i))
	login = base
	for attempt := 1; ; attempt++ {
		if err := limit.Wait(ctx); err != nil {
			return "", "", err
		}
		body, _ := json.Marshal(map[string]any{
			"email": login + "@target.scalelab.test", "username": login, "password": password,
			"profile": map[string]string{"name": "Target user " + strconv.Itoa(i)},
		})
		resp, err := c.Do(&loadgen.Request{Method: "POST", Path: api, Body: body, Expect: []int{201}})
		if err == nil {
			var created struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(resp.Body, &created) != nil || !server.ValidID(created.ID) {
				return "", "", fmt.Errorf("POST %s: 201 without a user id: %.200q", api, resp.Body)
			}
			return created.ID, login, nil
		}
		var re *loadgen.RequestError
		retry := ""
		switch {
		case !errors.As(err, &re):
			return "", "", fmt.Errorf("POST %s: %w", api, err)
		case resp == nil: // a transport failure: timeout, reset, refused
			retry = re.Class
			login = base + "-r" + strconv.Itoa(attempt)
		case re.Status == 429 || re.Status == 503:
			retry = strconv.Itoa(re.Status)
		default:
			return "", "", fmt.Errorf("POST %s: status %d: %.300s", api, resp.Status, resp.Body)
		}
		if attempt == maxSignUpAttempts {
			return "", "", fmt.Errorf("POST %s: still %s after %d attempts: %w", api, retry, attempt, err)
		}
		h := ""
		if resp != nil {
			h = resp.Header("Retry-After")
		}
		select {
		case <-time.After(retryAfter(h, attempt)):
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
	}
}

// retryAfter is how long to wait before another attempt: the Retry-After
// seconds when given (at most 30 s), else a backoff doubling from 100 ms.
func retryAfter(h string, attempt int) time.Duration {
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 30*time.Second) + 50*time.Millisecond
	}
	return min(100*time.Millisecond<<min(attempt, 8), 10*time.Second)
}

func randomTag() (string, error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random tag: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

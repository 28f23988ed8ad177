package storetest

import (
	"fmt"
	"sync"
	"testing"

	"scalelab/server"
)

// Email and username stay unique however the store keeps them (a unique
// index, or lookup tables beside partitioned users): these tests change
// them and race for them.

func testLoginsMoveWithUpdate(t *testing.T, s server.Store) {
	ctx := t.Context()
	ada := mustCreateUser(t, s, "ada@example.com", "ada")
	if _, err := s.UpdateUser(ctx, ada.ID, server.UserUpdate{Email: ptr("Countess@example.com"), Username: ptr("Lovelace")}); err != nil {
		t.Fatalf("UpdateUser(new email and username) = %v", err)
	}
	for _, login := range []string{"countess@EXAMPLE.com", "LOVELACE"} {
		if got, err := s.UserByLogin(ctx, login); err != nil || got.ID != ada.ID {
			t.Errorf("UserByLogin(%q) = %v, %v, want user %s", login, got, err, ada.ID)
		}
	}
	for _, login := range []string{"ada@example.com", "ada"} {
		_, err := s.UserByLogin(ctx, login)
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("UserByLogin(%q) after it changed", login))
	}
	// The old ones are free, the new ones taken.
	bob := mustCreateUser(t, s, "ADA@example.com", "Ada")
	err := s.CreateUser(ctx, &server.User{Email: "countess@example.com", Username: "carl", PasswordHash: "h"})
	wantConflict(t, err, "email", "CreateUser(the new email)")
	err = s.CreateUser(ctx, &server.User{Email: "carl@example.com", Username: "lovelace", PasswordHash: "h"})
	wantConflict(t, err, "username", "CreateUser(the new username)")
	// Changing only one, and to the same key in another case, keeps the other.
	if _, err := s.UpdateUser(ctx, bob.ID, server.UserUpdate{Username: ptr("ADA")}); err != nil {
		t.Fatalf("UpdateUser(username in another case) = %v", err)
	}
	if got, err := s.UserByLogin(ctx, "ada@example.com"); err != nil || got.ID != bob.ID || got.Username != "ADA" {
		t.Errorf("UserByLogin(ada@example.com) = %v, %v, want user %s named ADA", got, err, bob.ID)
	}
	// Deleting a user frees what it had last.
	if err := s.DeleteUser(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, "countess@example.com", "lovelace")
}

func testConcurrentSignUpsOneUsername(t *testing.T, s server.Store) {
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		username := "racer"
		if i%2 == 1 {
			username = "RACER"
		}
		u := &server.User{Email: fmt.Sprintf("racer%d@example.com", i), Username: username, PasswordHash: "h"}
		wg.Go(func() {
			<-start
			errs[i] = s.CreateUser(t.Context(), u)
		})
	}
	close(start)
	wg.Wait()
	wantOneWinner(t, errs, "username", "concurrent CreateUser")
}

func testConcurrentUpdatesToOneEmail(t *testing.T, s server.Store) {
	const n = 10
	users := make([]*server.User, n)
	for i := range n {
		users[i] = mustCreateUser(t, s, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d", i))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, u := range users {
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateUser(t.Context(), u.ID, server.UserUpdate{Email: ptr("wanted@example.com")})
		})
	}
	close(start)
	wg.Wait()
	winner := wantOneWinner(t, errs, "email", "concurrent UpdateUser")
	if winner < 0 {
		return
	}
	if got, err := s.UserByLogin(t.Context(), "wanted@example.com"); err != nil || got.ID != users[winner].ID {
		t.Errorf("UserByLogin(wanted@example.com) = %v, %v, want the winner %s", got, err, users[winner].ID)
	}
	// The losers kept their own.
	for i, u := range users {
		if i == winner {
			continue
		}
		if got, err := s.UserByLogin(t.Context(), u.Email); err != nil || got.ID != u.ID {
			t.Errorf("UserByLogin(%s) = %v, %v, want user %s", u.Email, got, err, u.ID)
		}
	}
}

// wantOneWinner checks that exactly one of errs is nil and the others are
// conflicts on field, and returns the winner's index (-1 for none).
func wantOneWinner(t *testing.T, errs []error, field, what string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Errorf("%s #%d and #%d both succeeded, want exactly one", what, winner, i)
			}
			winner = i
			continue
		}
		wantConflict(t, err, field, fmt.Sprintf("%s #%d", what, i))
	}
	if winner < 0 {
		t.Errorf("no %s succeeded, want exactly one", what)
	}
	return winner
}

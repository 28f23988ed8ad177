// Package storetest is the one acceptance suite every server.Store must pass:
// the SQLite and PostgreSQL stores, and every cache decorator wrapped around
// them. It checks the contract of package server's store interfaces, not any
// store's internals, on a real database.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) server.Store {
//			db := mustOpen(t) // an empty database of its own, closed in t.Cleanup
//			return db
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"scalelab/server"
)

// Seeder is what a store offers to bulk-load the seeded users. The seed
// subtest is skipped for stores (decorators) without it.
type Seeder interface {
	Seed(ctx context.Context, users int, passwordHash string, progress func(done int)) error
}

// Run runs the suite. open must return a store on an empty database of its
// own for each subtest and close it when that subtest ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) server.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s server.Store)
	}{
		{"CreateUser", testCreateUser},
		{"CreateUserKeepsGivenFields", testCreateUserKeepsGivenFields},
		{"UserNotFound", testUserNotFound},
		{"DuplicateEmail", testDuplicateEmail},
		{"DuplicateUsername", testDuplicateUsername},
		{"ConcurrentSignUps", testConcurrentSignUps},
		{"UpdateUser", testUpdateUser},
		{"UpdatedAtAlwaysAdvances", testUpdatedAtAlwaysAdvances},
		{"UpdateUserConflict", testUpdateUserConflict},
		{"UpdateOwnEmailCase", testUpdateOwnEmailCase},
		{"LoginsMoveWithUpdate", testLoginsMoveWithUpdate},
		{"ConcurrentSignUpsOneUsername", testConcurrentSignUpsOneUsername},
		{"ConcurrentUpdatesToOneEmail", testConcurrentUpdatesToOneEmail},
		{"DeleteUser", testDeleteUser},
		{"UserByLogin", testUserByLogin},
		{"CreateRecord", testCreateRecord},
		{"RecordDataRoundTrip", testRecordDataRoundTrip},
		{"CreateRecordErrors", testCreateRecordErrors},
		{"CreateRecords", testCreateRecords},
		{"CreateRecordsAllOrNone", testCreateRecordsAllOrNone},
		{"UpdateRecord", testUpdateRecord},
		{"DeleteRecord", testDeleteRecord},
		{"RecordNotFound", testRecordNotFound},
		{"RecordOwnerScoping", testRecordOwnerScoping},
		{"RecordsPagination", testRecordsPagination},
		{"RecordsNewestFirstWithinAMillisecond", testRecordsNewestFirst},
		{"RecordsStableUnderConcurrentInserts", testRecordsConcurrentInserts},
		{"RecordsBadCursorAndLimit", testRecordsBadCursorAndLimit},
		{"RecordsUnknownUser", testRecordsUnknownUser},
		{"RecordsPageByteBudget", testRecordsPageByteBudget},
		{"DeleteUserCascadesToRecords", testDeleteUserCascades},
		{"Seed", testSeed},
		{"Ping", testPing},
		{"UpdateUserIfVersion", testUpdateUserIfVersion},
		{"IdempotencyKeys", testIdempotencyKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// ---- users

func testCreateUser(t *testing.T, s server.Store) {
	ctx := t.Context()
	before := server.Now()
	u := &server.User{
		Email:        "Ada.Lovelace@Example.com",
		Username:     "Ada_Lovelace",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Profile:      server.Profile{Name: "Ada Lovelace", Avatar: "https://example.com/ada.png"},
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser() = %v, want nil", err)
	}
	if id, err := uuid.Parse(u.ID); err != nil || id.Version() != 7 || !server.ValidID(u.ID) {
		t.Errorf("CreateUser filled ID %q, want a lower-case UUIDv7", u.ID)
	}
	if u.CreatedAt.Before(before) || !u.UpdatedAt.Equal(u.CreatedAt) || u.CreatedAt != u.CreatedAt.Truncate(time.Microsecond) {
		t.Errorf("CreateUser filled CreatedAt %v, UpdatedAt %v, want equal, microsecond precision, not before %v", u.CreatedAt, u.UpdatedAt, before)
	}
	if u.Version != 1 {
		t.Errorf("CreateUser filled Version %d, want 1", u.Version)
	}
	got := mustUser(t, s, u.ID)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("User(%q) mismatch (-want +got):\n%s", u.ID, diff)
	}
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("User(%q) times in %v and %v, want UTC", u.ID, got.CreatedAt.Location(), got.UpdatedAt.Location())
	}
}

func testCreateUserKeepsGivenFields(t *testing.T, s server.Store) {
	id, err := server.NewID()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	u := &server.User{ID: id, Email: "grace@example.com", Username: "grace", PasswordHash: "h",
		CreatedAt: created, UpdatedAt: created.Add(time.Hour), Version: 7}
	want := *u
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser() = %v, want nil", err)
	}
	if diff := cmp.Diff(&want, u); diff != "" {
		t.Errorf("CreateUser changed given fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&want, mustUser(t, s, id)); diff != "" {
		t.Errorf("User(%q) mismatch (-want +got):\n%s", id, diff)
	}
	err = s.CreateUser(t.Context(), &server.User{ID: id, Email: "other@example.com", Username: "other", PasswordHash: "h"})
	wantCode(t, err, server.ECONFLICT, "CreateUser(an id that exists)")
	err = s.CreateUser(t.Context(), &server.User{ID: "not-a-uuid", Email: "x@example.com", Username: "x", PasswordHash: "h"})
	wantCode(t, err, server.EINVALID, "CreateUser(a malformed id)")
}

func testUserNotFound(t *testing.T, s server.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "ada@example.com", "ada")
	for _, id := range []string{newID(t), "", "not-a-uuid", "01890A5D-AC96-774B-BCCE-B302099A8057", "'; DROP TABLE users; --"} {
		_, err := s.User(ctx, id)
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("User(%q)", id))
		_, err = s.UpdateUser(ctx, id, server.UserUpdate{Name: ptr("x")})
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("UpdateUser(%q)", id))
		wantCode(t, s.DeleteUser(ctx, id), server.ENOTFOUND, fmt.Sprintf("DeleteUser(%q)", id))
	}
	for _, login := range []string{"nobody", "nobody@example.com", ""} {
		_, err := s.UserByLogin(ctx, login)
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("UserByLogin(%q)", login))
	}
}

func testDuplicateEmail(t *testing.T, s server.Store) {
	first := mustCreateUser(t, s, "Ada@Example.com", "ada")
	err := s.CreateUser(t.Context(), &server.User{Email: "aDA@eXAMPLE.COM", Username: "other", PasswordHash: "h"})
	wantConflict(t, err, "email", "CreateUser(same email, other case)")
	if got := mustUser(t, s, first.ID); got.Email != "Ada@Example.com" {
		t.Errorf("User(%q).Email = %q, want %q (stored as given)", first.ID, got.Email, "Ada@Example.com")
	}
}

func testDuplicateUsername(t *testing.T, s server.Store) {
	first := mustCreateUser(t, s, "ada@example.com", "Ada.L")
	err := s.CreateUser(t.Context(), &server.User{Email: "other@example.com", Username: "aDA.l", PasswordHash: "h"})
	wantConflict(t, err, "username", "CreateUser(same username, other case)")
	if got := mustUser(t, s, first.ID); got.Username != "Ada.L" {
		t.Errorf("User(%q).Username = %q, want %q (stored as given)", first.ID, got.Username, "Ada.L")
	}
}

func testConcurrentSignUps(t *testing.T, s server.Store) {
	const n = 20
	users := make([]*server.User, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		// The same address in different cases, and distinct usernames.
		email := "race@example.com"
		if i%2 == 1 {
			email = "RACE@example.com"
		}
		users[i] = &server.User{Email: email, Username: fmt.Sprintf("racer%d", i), PasswordHash: "h"}
		wg.Go(func() {
			<-start
			errs[i] = s.CreateUser(t.Context(), users[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Errorf("CreateUser #%d and #%d both succeeded with the same email, want exactly one", winner, i)
			}
			winner = i
			continue
		}
		wantConflict(t, err, "email", fmt.Sprintf("concurrent CreateUser #%d", i))
	}
	if winner < 0 {
		t.Fatalf("no concurrent CreateUser succeeded, want exactly one")
	}
	got, err := s.UserByLogin(t.Context(), "race@example.com")
	if err != nil || got.ID != users[winner].ID {
		t.Errorf("UserByLogin(race@example.com) = %v, %v, want the winner %s", got, err, users[winner].ID)
	}
}

func testUpdateUser(t *testing.T, s server.Store) {
	ctx := t.Context()
	old := mustCreateUser(t, s, "ada@example.com", "ada")
	old.Profile = server.Profile{}

	// Only the name: everything else stays.
	got, err := s.UpdateUser(ctx, old.ID, server.UserUpdate{Name: ptr("Ada K.")})
	if err != nil {
		t.Fatalf("UpdateUser(name) = %v", err)
	}
	want := *old
	want.Profile.Name = "Ada K."
	checkUpdated(t, old, got)
	want.UpdatedAt, want.Version = got.UpdatedAt, old.Version+1
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("UpdateUser(name) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got, mustUser(t, s, old.ID)); diff != "" {
		t.Errorf("User(%q) after update differs from what UpdateUser returned (-returned +read):\n%s", old.ID, diff)
	}

	// Every field.
	prev := got
	got, err = s.UpdateUser(ctx, old.ID, server.UserUpdate{Email: ptr("Ada@New.example"), Username: ptr("AdaK"),
		PasswordHash: ptr("new-hash"), Name: ptr(""), Avatar: ptr("https://example.com/a.png")})
	if err != nil {
		t.Fatalf("UpdateUser(all) = %v", err)
	}
	checkUpdated(t, prev, got)
	want = server.User{ID: old.ID, Email: "Ada@New.example", Username: "AdaK", PasswordHash: "new-hash",
		Profile:   server.Profile{Name: "", Avatar: "https://example.com/a.png"},
		CreatedAt: old.CreatedAt, UpdatedAt: got.UpdatedAt, Version: prev.Version + 1}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("UpdateUser(all) mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.UserByLogin(ctx, "ada@example.com"); server.ErrorCode(err) != server.ENOTFOUND {
		t.Errorf("UserByLogin(old email) = %v, want ENOTFOUND", err)
	}
	if u, err := s.UserByLogin(ctx, "adak"); err != nil || u.ID != old.ID {
		t.Errorf("UserByLogin(new username) = %v, %v, want user %s", u, err, old.ID)
	}

	// Nothing: still an update.
	prev = got
	got, err = s.UpdateUser(ctx, old.ID, server.UserUpdate{})
	if err != nil {
		t.Fatalf("UpdateUser(nothing) = %v", err)
	}
	checkUpdated(t, prev, got)
}

// checkUpdated checks what every update does: UpdatedAt advances, Version
// grows by one, CreatedAt stays.
func checkUpdated(t *testing.T, before, after *server.User) {
	t.Helper()
	if !after.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("UpdatedAt = %v after update, want after %v", after.UpdatedAt, before.UpdatedAt)
	}
	if after.Version != before.Version+1 {
		t.Errorf("Version = %d after update, want %d", after.Version, before.Version+1)
	}
	if !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("CreatedAt = %v after update, want %v", after.CreatedAt, before.CreatedAt)
	}
}

func testUpdatedAtAlwaysAdvances(t *testing.T, s server.Store) {
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	prev := u
	for i := range 30 { // far quicker than a microsecond apart, some of them
		got, err := s.UpdateUser(t.Context(), u.ID, server.UserUpdate{Name: ptr(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("UpdateUser #%d = %v", i, err)
		}
		checkUpdated(t, prev, got)
		prev = got
	}
}

func testUpdateUserConflict(t *testing.T, s server.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "ada@example.com", "ada")
	bob := mustCreateUser(t, s, "bob@example.com", "bob")
	_, err := s.UpdateUser(ctx, bob.ID, server.UserUpdate{Email: ptr("ADA@example.com"), Name: ptr("x")})
	wantConflict(t, err, "email", "UpdateUser(another's email)")
	_, err = s.UpdateUser(ctx, bob.ID, server.UserUpdate{Username: ptr("ADA"), Name: ptr("x")})
	wantConflict(t, err, "username", "UpdateUser(another's username)")
	if diff := cmp.Diff(bob, mustUser(t, s, bob.ID)); diff != "" {
		t.Errorf("User(%q) changed by failed updates (-want +got):\n%s", bob.ID, diff)
	}
}

func testUpdateOwnEmailCase(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	got, err := s.UpdateUser(ctx, u.ID, server.UserUpdate{Email: ptr("ADA@example.com"), Username: ptr("ADA")})
	if err != nil {
		t.Fatalf("UpdateUser(own email and username in another case) = %v, want nil", err)
	}
	if got.Email != "ADA@example.com" || got.Username != "ADA" {
		t.Errorf("UpdateUser stored %q, %q, want them as given: %q, %q", got.Email, got.Username, "ADA@example.com", "ADA")
	}
	if byLogin, err := s.UserByLogin(ctx, "Ada@Example.Com"); err != nil || byLogin.ID != u.ID {
		t.Errorf("UserByLogin(Ada@Example.Com) = %v, %v, want user %s", byLogin, err, u.ID)
	}
}

func testDeleteUser(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	other := mustCreateUser(t, s, "bob@example.com", "bob")
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser(%q) = %v, want nil", u.ID, err)
	}
	_, err := s.User(ctx, u.ID)
	wantCode(t, err, server.ENOTFOUND, "User after DeleteUser")
	wantCode(t, s.DeleteUser(ctx, u.ID), server.ENOTFOUND, "second DeleteUser")
	_, err = s.UserByLogin(ctx, "ada")
	wantCode(t, err, server.ENOTFOUND, "UserByLogin after DeleteUser")
	mustUser(t, s, other.ID)
	// Its email and username are free again.
	mustCreateUser(t, s, "ada@example.com", "ada")
}

func testUserByLogin(t *testing.T, s server.Store) {
	ctx := t.Context()
	ada := mustCreateUser(t, s, "Ada@Example.com", "Ada.L")
	mustCreateUser(t, s, "bob@example.com", "bob")
	for _, login := range []string{"Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM", "Ada.L", "ada.l", "ADA.L"} {
		got, err := s.UserByLogin(ctx, login)
		if err != nil {
			t.Errorf("UserByLogin(%q) = %v, want user %s", login, err, ada.ID)
			continue
		}
		if diff := cmp.Diff(ada, got); diff != "" {
			t.Errorf("UserByLogin(%q) mismatch (-want +got):\n%s", login, diff)
		}
	}
}

// ---- records

func testCreateRecord(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	before := server.Now()
	r := &server.Record{UserID: u.ID, Data: json.RawMessage(`{"b":1,"a":[1,2,{"z":null}]}`)}
	if err := s.CreateRecord(ctx, r); err != nil {
		t.Fatalf("CreateRecord() = %v", err)
	}
	if id, err := uuid.Parse(r.ID); err != nil || id.Version() != 7 || !server.ValidID(r.ID) {
		t.Errorf("CreateRecord filled ID %q, want a lower-case UUIDv7", r.ID)
	}
	if r.CreatedAt.Before(before) || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Errorf("CreateRecord filled CreatedAt %v, UpdatedAt %v, want equal and not before %v", r.CreatedAt, r.UpdatedAt, before)
	}
	got := mustRecord(t, s, u.ID, r.ID)
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Record(%q) mismatch (-want +got):\n%s", r.ID, diff)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("Record(%q).CreatedAt in %v, want UTC", r.ID, got.CreatedAt.Location())
	}
}

func testRecordDataRoundTrip(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	// The bytes the client sent (compacted) come back: key order, duplicate
	// keys, number spelling and escapes included.
	for _, data := range []string{
		`{"b":1,"a":2}`,
		`{"a":1,"a":2}`,
		`{"n":1.50,"e":-1e+10,"big":123456789012345678901234567890}`,
		`"caf\u00e9 \"quoted\" \ud83d\ude00"`,
		`{"nul":"\u0000"}`,
		`[]`,
		`{}`,
		`42`,
		`null`,
		`true`,
		`{"deep":[[[[{"x":["y"]}]]]]}`,
	} {
		r := &server.Record{UserID: u.ID, Data: json.RawMessage(data)}
		if err := s.CreateRecord(ctx, r); err != nil {
			t.Errorf("CreateRecord(%s) = %v, want nil", data, err)
			continue
		}
		if got := mustRecord(t, s, u.ID, r.ID); string(got.Data) != data {
			t.Errorf("Record(%s).Data = %s, want %s", r.ID, got.Data, data)
		}
		page, err := s.Records(ctx, u.ID, 1, "")
		if err != nil || len(page.Items) != 1 || string(page.Items[0].Data) != data {
			t.Errorf("Records(first) = %+v, %v, want one item with data %s", page, err, data)
		}
	}
}

func testCreateRecordErrors(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	for _, data := range []string{"", "{", `{"a":1}x`, "nul"} {
		err := s.CreateRecord(ctx, &server.Record{UserID: u.ID, Data: json.RawMessage(data)})
		wantCode(t, err, server.EINVALID, fmt.Sprintf("CreateRecord(data %q)", data))
	}
	for _, owner := range []string{newID(t), "not-a-uuid"} {
		err := s.CreateRecord(ctx, &server.Record{UserID: owner, Data: json.RawMessage(`1`)})
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("CreateRecord(owner %q)", owner))
	}
}

func testUpdateRecord(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	r := mustCreateRecord(t, s, u.ID, `{"v":1}`)
	prev := r
	for i := 2; i < 12; i++ {
		data := json.RawMessage(fmt.Sprintf(`{"v":%d}`, i))
		got, err := s.UpdateRecord(ctx, u.ID, r.ID, data)
		if err != nil {
			t.Fatalf("UpdateRecord(%s) = %v", data, err)
		}
		if !got.UpdatedAt.After(prev.UpdatedAt) {
			t.Errorf("UpdateRecord: UpdatedAt = %v, want after %v", got.UpdatedAt, prev.UpdatedAt)
		}
		want := *r
		want.Data, want.UpdatedAt = data, got.UpdatedAt
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("UpdateRecord(%s) mismatch (-want +got):\n%s", data, diff)
		}
		if diff := cmp.Diff(got, mustRecord(t, s, u.ID, r.ID)); diff != "" {
			t.Errorf("Record(%q) after update differs from what UpdateRecord returned (-returned +read):\n%s", r.ID, diff)
		}
		prev = got
	}
	_, err := s.UpdateRecord(ctx, u.ID, r.ID, json.RawMessage(`{`))
	wantCode(t, err, server.EINVALID, "UpdateRecord(invalid JSON)")
}

func testDeleteRecord(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	r := mustCreateRecord(t, s, u.ID, `1`)
	keep := mustCreateRecord(t, s, u.ID, `2`)
	if err := s.DeleteRecord(ctx, u.ID, r.ID); err != nil {
		t.Fatalf("DeleteRecord() = %v", err)
	}
	_, err := s.Record(ctx, u.ID, r.ID)
	wantCode(t, err, server.ENOTFOUND, "Record after DeleteRecord")
	wantCode(t, s.DeleteRecord(ctx, u.ID, r.ID), server.ENOTFOUND, "second DeleteRecord")
	_, err = s.UpdateRecord(ctx, u.ID, r.ID, json.RawMessage(`3`))
	wantCode(t, err, server.ENOTFOUND, "UpdateRecord after DeleteRecord")
	if got := listAll(t, s, u.ID, 10); !slices.Equal(got, []string{keep.ID}) {
		t.Errorf("Records after DeleteRecord = %v, want [%s]", got, keep.ID)
	}
}

func testRecordNotFound(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	mustCreateRecord(t, s, u.ID, `1`)
	for _, id := range []string{newID(t), "", "nope", strings.ToUpper(newID(t))} {
		_, err := s.Record(ctx, u.ID, id)
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("Record(%q)", id))
		_, err = s.UpdateRecord(ctx, u.ID, id, json.RawMessage(`1`))
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("UpdateRecord(%q)", id))
		wantCode(t, s.DeleteRecord(ctx, u.ID, id), server.ENOTFOUND, fmt.Sprintf("DeleteRecord(%q)", id))
	}
}

func testRecordOwnerScoping(t *testing.T, s server.Store) {
	ctx := t.Context()
	ada := mustCreateUser(t, s, "ada@example.com", "ada")
	bob := mustCreateUser(t, s, "bob@example.com", "bob")
	r := mustCreateRecord(t, s, ada.ID, `{"owner":"ada"}`)
	_, err := s.Record(ctx, bob.ID, r.ID)
	wantCode(t, err, server.ENOTFOUND, "Record(another user's record)")
	_, err = s.UpdateRecord(ctx, bob.ID, r.ID, json.RawMessage(`{"owner":"bob"}`))
	wantCode(t, err, server.ENOTFOUND, "UpdateRecord(another user's record)")
	wantCode(t, s.DeleteRecord(ctx, bob.ID, r.ID), server.ENOTFOUND, "DeleteRecord(another user's record)")
	if got := listAll(t, s, bob.ID, 10); len(got) != 0 {
		t.Errorf("Records(bob) = %v, want none", got)
	}
	if diff := cmp.Diff(r, mustRecord(t, s, ada.ID, r.ID)); diff != "" {
		t.Errorf("Record(%q) changed by another user (-want +got):\n%s", r.ID, diff)
	}
}

func testRecordsPagination(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	other := mustCreateUser(t, s, "bob@example.com", "bob")
	var created []string
	for i := range 25 {
		created = append(created, mustCreateRecord(t, s, u.ID, fmt.Sprintf(`{"i":%d}`, i)).ID)
		mustCreateRecord(t, s, other.ID, `{}`) // interleaved, never listed for u
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	for _, tc := range []struct {
		limit int
		sizes []int
	}{
		{10, []int{10, 10, 5}},
		{5, []int{5, 5, 5, 5, 5}}, // the last page is exactly full: no empty page after it
		{25, []int{25}},
		{100, []int{25}},
		{1, slices.Repeat([]int{1}, 25)},
	} {
		var got []string
		var sizes []int
		cursor := ""
		for range 30 {
			page, err := s.Records(ctx, u.ID, tc.limit, cursor)
			if err != nil {
				t.Fatalf("Records(limit %d, cursor %q) = %v", tc.limit, cursor, err)
			}
			sizes = append(sizes, len(page.Items))
			for _, r := range page.Items {
				got = append(got, r.ID)
				if r.UserID != u.ID {
					t.Errorf("Records(%s) returned record %s of user %s", u.ID, r.ID, r.UserID)
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(sizes, tc.sizes) {
			t.Errorf("Records(limit %d) page sizes = %v, want %v", tc.limit, sizes, tc.sizes)
		}
		if !slices.Equal(got, newestFirst) {
			t.Errorf("Records(limit %d) = %v, want newest first %v", tc.limit, got, newestFirst)
		}
	}

	empty := mustCreateUser(t, s, "carol@example.com", "carol")
	page, err := s.Records(ctx, empty.ID, 10, "")
	if err != nil || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("Records(user without records) = %+v, %v, want an empty page without cursor", page, err)
	}
}

func testRecordsNewestFirst(t *testing.T, s server.Store) {
	// Many of these are created in the same millisecond: UUIDv7 ids from one
	// process still order them (google/uuid keeps a per-process sequence).
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	var created []string
	for i := range 60 {
		created = append(created, mustCreateRecord(t, s, u.ID, fmt.Sprint(i)).ID)
	}
	slices.Reverse(created)
	if got := listAll(t, s, u.ID, 100); !slices.Equal(got, created) {
		t.Errorf("Records = %v, want newest first %v", got, created)
	}
}

func testRecordsConcurrentInserts(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	existing := map[string]bool{}
	for i := range 40 {
		existing[mustCreateRecord(t, s, u.ID, fmt.Sprint(i)).ID] = true
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var insertErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CreateRecord(ctx, &server.Record{UserID: u.ID, Data: json.RawMessage(fmt.Sprintf(`{"new":%d}`, i))}); err != nil {
				insertErr = err
				return
			}
		}
	})
	var got []string
	cursor := ""
	for {
		page, err := s.Records(ctx, u.ID, 3, cursor)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("Records(cursor %q) = %v", cursor, err)
		}
		for _, r := range page.Items {
			got = append(got, r.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
		time.Sleep(time.Millisecond) // let inserts land between pages
	}
	close(stop)
	wg.Wait()
	if insertErr != nil {
		t.Fatalf("concurrent CreateRecord = %v", insertErr)
	}
	seen := map[string]bool{}
	for i, id := range got {
		if seen[id] {
			t.Errorf("Records listed %s twice", id)
		}
		seen[id] = true
		if i > 0 && id >= got[i-1] {
			t.Errorf("Records listed %s after %s, want strictly newest first", id, got[i-1])
		}
	}
	for id := range existing {
		if !seen[id] {
			t.Errorf("Records skipped %s, which existed before the first page", id)
		}
	}
}

func testRecordsBadCursorAndLimit(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	for i := range 3 {
		mustCreateRecord(t, s, u.ID, fmt.Sprint(i))
	}
	for _, cursor := range []string{"!!!", "not a cursor", "aGVsbG8", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", newID(t)} {
		_, err := s.Records(ctx, u.ID, 10, cursor)
		wantCode(t, err, server.EBADREQUEST, fmt.Sprintf("Records(cursor %q)", cursor))
		if server.ErrorMessage(err) != "invalid cursor" {
			t.Errorf("Records(cursor %q) message = %q, want %q", cursor, server.ErrorMessage(err), "invalid cursor")
		}
	}
	for _, limit := range []int{0, -1, 101} {
		_, err := s.Records(ctx, u.ID, limit, "")
		wantCode(t, err, server.EBADREQUEST, fmt.Sprintf("Records(limit %d)", limit))
	}
}

func testRecordsUnknownUser(t *testing.T, s server.Store) {
	for _, id := range []string{newID(t), "nope"} {
		_, err := s.Records(t.Context(), id, 10, "")
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("Records(%q)", id))
	}
}

func testDeleteUserCascades(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "ada@example.com", "ada")
	var ids []string
	for i := range 3 {
		ids = append(ids, mustCreateRecord(t, s, u.ID, fmt.Sprint(i)).ID)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser() = %v", err)
	}
	for _, id := range ids {
		_, err := s.Record(ctx, u.ID, id)
		wantCode(t, err, server.ENOTFOUND, fmt.Sprintf("Record(%q) of a deleted user", id))
	}
	_, err := s.Records(ctx, u.ID, 10, "")
	wantCode(t, err, server.ENOTFOUND, "Records of a deleted user")
	// A new user with the same id finds nothing left behind.
	again := &server.User{ID: u.ID, Email: "ada@example.com", Username: "ada", PasswordHash: "h"}
	if err := s.CreateUser(ctx, again); err != nil {
		t.Fatalf("CreateUser(same id again) = %v", err)
	}
	if got := listAll(t, s, u.ID, 10); len(got) != 0 {
		t.Errorf("Records of a re-created user = %v, want none (deleted with the user)", got)
	}
}

// ---- seeding and health

func testSeed(t *testing.T, s server.Store) {
	seeder, ok := s.(Seeder)
	if !ok {
		t.Skipf("%T has no Seed method", s)
	}
	ctx := t.Context()
	const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA"
	other := mustCreateUser(t, s, "ada@example.com", "ada") // seeding leaves other users alone

	var done []int
	if err := seeder.Seed(ctx, 1200, hash, func(n int) { done = append(done, n) }); err != nil {
		t.Fatalf("Seed(1200) = %v", err)
	}
	if len(done) == 0 || done[len(done)-1] != 1200 || !slices.IsSorted(done) {
		t.Errorf("Seed(1200) reported progress %v, want non-decreasing up to 1200", done)
	}
	checkSeeded(t, s, hash, 0, 1, 599, 1199)
	_, err := s.User(ctx, server.SeedUserID(1200))
	wantCode(t, err, server.ENOTFOUND, "User(SeedUserID(1200)) after Seed(1200)")

	// Again: nothing to do. More: only the missing ones.
	if err := seeder.Seed(ctx, 1200, hash, nil); err != nil {
		t.Errorf("Seed(1200) again = %v, want nil (already seeded)", err)
	}
	if err := seeder.Seed(ctx, 1500, hash, nil); err != nil {
		t.Fatalf("Seed(1500) after Seed(1200) = %v, want nil (adds 1200..1499)", err)
	}
	checkSeeded(t, s, hash, 1200, 1499)
	mustUser(t, s, other.ID)

	// A seeded user behaves like any other.
	id := server.SeedUserID(7)
	if _, err := s.UpdateUser(ctx, id, server.UserUpdate{Name: ptr("renamed")}); err != nil {
		t.Errorf("UpdateUser(seeded user) = %v", err)
	}
	if err := s.CreateRecord(ctx, &server.Record{UserID: id, Data: json.RawMessage(`1`)}); err != nil {
		t.Errorf("CreateRecord(seeded user) = %v", err)
	}
}

func checkSeeded(t *testing.T, s server.Store, hash string, is ...int) {
	t.Helper()
	for _, i := range is {
		got := mustUser(t, s, server.SeedUserID(i))
		want := server.SeedUser(i, hash, got.CreatedAt)
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("User(SeedUserID(%d)) mismatch (-want +got):\n%s", i, diff)
		}
		for _, login := range []string{server.SeedEmail(i), strings.ToUpper(server.SeedUsername(i))} {
			if u, err := s.UserByLogin(t.Context(), login); err != nil || u.ID != want.ID {
				t.Errorf("UserByLogin(%q) = %v, %v, want seeded user %d", login, u, err, i)
			}
		}
	}
}

func testPing(t *testing.T, s server.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}

// ---- helpers

func ptr[T any](v T) *T { return &v }

func newID(t *testing.T) string {
	t.Helper()
	id, err := server.NewID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustCreateUser(t *testing.T, s server.Store, email, username string) *server.User {
	t.Helper()
	u := &server.User{Email: email, Username: username, PasswordHash: "hash-of-" + username,
		Profile: server.Profile{Name: "Name of " + username}}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q, %q) = %v", email, username, err)
	}
	return u
}

func mustUser(t *testing.T, s server.Store, id string) *server.User {
	t.Helper()
	u, err := s.User(t.Context(), id)
	if err != nil {
		t.Fatalf("User(%q) = %v", id, err)
	}
	return u
}

func mustCreateRecord(t *testing.T, s server.Store, userID, data string) *server.Record {
	t.Helper()
	r := &server.Record{UserID: userID, Data: json.RawMessage(data)}
	if err := s.CreateRecord(t.Context(), r); err != nil {
		t.Fatalf("CreateRecord(%s) = %v", data, err)
	}
	return r
}

func mustRecord(t *testing.T, s server.Store, userID, id string) *server.Record {
	t.Helper()
	r, err := s.Record(t.Context(), userID, id)
	if err != nil {
		t.Fatalf("Record(%q) = %v", id, err)
	}
	return r
}

// listAll pages through all records of userID and returns their ids.
func listAll(t *testing.T, s server.Store, userID string, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		page, err := s.Records(t.Context(), userID, limit, cursor)
		if err != nil {
			t.Fatalf("Records(%q, %d, %q) = %v", userID, limit, cursor, err)
		}
		for _, r := range page.Items {
			ids = append(ids, r.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			return ids
		}
	}
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if got := server.ErrorCode(err); got != code {
		t.Errorf("%s = %v (code %q), want code %q", what, err, got, code)
	}
}

func wantConflict(t *testing.T, err error, field, what string) {
	t.Helper()
	var e *server.Error
	if !errors.As(err, &e) || e.Code != server.ECONFLICT || e.Field != field {
		t.Errorf("%s = %v, want ECONFLICT on field %q", what, err, field)
	}
}

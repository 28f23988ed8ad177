package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"scalelab/server"
)

// testUpdateUserIfVersion: an update with IfVersion applies only to that
// version; otherwise EPRECONDITION and nothing changes (ENOTFOUND for an
// unknown user).
func testUpdateUserIfVersion(t *testing.T, s server.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "cas@example.com", "cas")
	old := u.Version
	got, err := s.UpdateUser(ctx, u.ID, server.UserUpdate{Name: ptr("first"), IfVersion: &old})
	if err != nil || got.Version != old+1 {
		t.Fatalf("UpdateUser(IfVersion %d, the current one) = %+v, %v; want version %d", old, got, err, old+1)
	}
	_, err = s.UpdateUser(ctx, u.ID, server.UserUpdate{Name: ptr("late"), IfVersion: &old})
	wantCode(t, err, server.EPRECONDITION, "UpdateUser(IfVersion of an older version)")
	if now := mustUser(t, s, u.ID); now.Profile.Name != "first" || now.Version != old+1 {
		t.Errorf("after the refused update: name %q version %d, want %q version %d", now.Profile.Name, now.Version, "first", old+1)
	}
	_, err = s.UpdateUser(ctx, uuid.NewString(), server.UserUpdate{Name: ptr("x"), IfVersion: &old})
	wantCode(t, err, server.ENOTFOUND, "UpdateUser(unknown user, IfVersion)")
}

// testIdempotencyKeys: a store that keeps idempotency keys claims each
// once, tells a running claim (ECONFLICT) and another request's
// (EINVALID) apart, replays a saved answer, and lets a released or
// lease-expired claim be taken again.
func testIdempotencyKeys(t *testing.T, s server.Store) {
	keys, ok := s.(server.IdempotencyStore)
	if !ok {
		t.Skip("the store keeps no idempotency keys")
	}
	ctx := t.Context()
	const lease = time.Minute
	if saved, err := keys.ClaimIdempotencyKey(ctx, "k1", "fp1", lease); saved != nil || err != nil {
		t.Fatalf("first claim = %v, %v; want nil, nil", saved, err)
	}
	_, err := keys.ClaimIdempotencyKey(ctx, "k1", "fp1", lease)
	wantCode(t, err, server.ECONFLICT, "a claim while the first runs")
	_, err = keys.ClaimIdempotencyKey(ctx, "k1", "fp2", lease)
	wantCode(t, err, server.EINVALID, "a claim with another request")

	want := server.SavedResponse{Status: 201, Header: map[string]string{"Location": "/x/1", "Content-Type": "application/json"}, Body: []byte(`{"id":"1"}`)}
	if err := keys.SaveIdempotentResponse(ctx, "k1", want); err != nil {
		t.Fatal(err)
	}
	saved, err := keys.ClaimIdempotencyKey(ctx, "k1", "fp1", lease)
	if err != nil || saved == nil {
		t.Fatalf("claim after the answer was saved = %v, %v; want the answer", saved, err)
	}
	if diff := cmp.Diff(want, *saved); diff != "" {
		t.Errorf("saved answer mismatch (-want +got):\n%s", diff)
	}
	// Releasing an answered key does nothing.
	if err := keys.ReleaseIdempotencyKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if saved, err := keys.ClaimIdempotencyKey(ctx, "k1", "fp1", lease); saved == nil || err != nil {
		t.Errorf("claim after releasing an answered key = %v, %v; want the answer", saved, err)
	}

	// A released claim is taken again.
	if _, err := keys.ClaimIdempotencyKey(ctx, "k2", "fp", lease); err != nil {
		t.Fatal(err)
	}
	if err := keys.ReleaseIdempotencyKey(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if saved, err := keys.ClaimIdempotencyKey(ctx, "k2", "fp", lease); saved != nil || err != nil {
		t.Errorf("claim after a release = %v, %v; want nil, nil", saved, err)
	}
	// A claim whose lease is over is taken again by the same request.
	if _, err := keys.ClaimIdempotencyKey(ctx, "k3", "fp", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_, err = keys.ClaimIdempotencyKey(ctx, "k3", "other", lease)
	wantCode(t, err, server.EINVALID, "another request's claim after the lease")
	if saved, err := keys.ClaimIdempotencyKey(ctx, "k3", "fp", lease); saved != nil || err != nil {
		t.Errorf("claim after the lease ended = %v, %v; want nil, nil", saved, err)
	}
}

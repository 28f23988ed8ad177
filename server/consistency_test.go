package server_test

import (
	"context"
	"sync"
	"testing"

	"scalelab/server"
)

func TestPositionText(t *testing.T) {
	tests := []struct {
		text string
		p    server.Position
	}{
		{"0/0", 0},
		{"0/1", 1},
		{"16/B374D848", 0x16_B374D848},
		{"FFFFFFFF/FFFFFFFF", server.PositionUnknown},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.text {
			t.Errorf("Position(%#x).String() = %q, want %q", uint64(tt.p), got, tt.text)
		}
		if got, err := server.ParsePosition(tt.text); err != nil || got != tt.p {
			t.Errorf("ParsePosition(%q) = %v, %v, want %v", tt.text, got, err, tt.p)
		}
	}
	if got, err := server.ParsePosition("16/b374d848"); err != nil || got != 0x16_B374D848 {
		t.Errorf("ParsePosition(lower case) = %v, %v, want 16/B374D848", got, err)
	}
	if got, err := server.ParsePosition(""); err != nil || got != 0 {
		t.Errorf(`ParsePosition("") = %v, %v, want 0/0`, got, err)
	}
	for _, bad := range []string{"16", "/1", "1/", "1/2/3", "x/1", "-1/1", "1/+1", "123456789/0", "0/123456789", " 1/1"} {
		if _, err := server.ParsePosition(bad); server.ErrorCode(err) != server.EBADREQUEST {
			t.Errorf("ParsePosition(%q) error = %v, want %s", bad, err, server.EBADREQUEST)
		}
	}
}

func TestMinPosition(t *testing.T) {
	ctx := context.Background()
	if got := server.MinPosition(ctx); got != 0 {
		t.Errorf("MinPosition(background) = %v, want 0/0", got)
	}
	ctx = server.WithMinPosition(ctx, 10)
	if got := server.MinPosition(server.WithMinPosition(ctx, 5)); got != 10 {
		t.Errorf("MinPosition after an earlier position = %v, want the later 0/A", got)
	}
	if got := server.MinPosition(server.WithMinPosition(ctx, 20)); got != 20 {
		t.Errorf("MinPosition after a later position = %v, want 0/14", got)
	}
	if server.UsePrimary(ctx) || !server.UsePrimary(server.WithPrimary(ctx)) {
		t.Errorf("UsePrimary is not exactly what WithPrimary set")
	}
}

func TestPositionRecorder(t *testing.T) {
	ctx := context.Background()
	if server.WantsPosition(ctx) {
		t.Errorf("WantsPosition(background) = true, want false")
	}
	server.RecordPosition(ctx, 7) // no recorder: nothing happens
	outerCtx, outer := server.WithPositionRecorder(ctx)
	innerCtx, inner := server.WithPositionRecorder(outerCtx)
	if !server.WantsPosition(innerCtx) {
		t.Errorf("WantsPosition(with a recorder) = false, want true")
	}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() { server.RecordPosition(innerCtx, server.Position(i+1)) })
	}
	wg.Wait()
	server.RecordPosition(outerCtx, 50)
	if got := inner.Position(); got != 100 {
		t.Errorf("inner Position() = %v, want the largest recorded, 0/64", got)
	}
	if got := outer.Position(); got != 100 {
		t.Errorf("outer Position() = %v, want the inner writes' 0/64 too", got)
	}
}

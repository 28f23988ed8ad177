package topologies

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A primary slower to answer than the sampling interval (a loaded or
// stalled machine: a connection's start-up alone takes longer) still gets
// its replica lag sampled: slower, but not never.
func TestLagSamplerOnSlowPrimary(t *testing.T) {
	const interval, delay = 50 * time.Millisecond, 150 * time.Millisecond
	addr := slowPrimary(t, delay)
	s := &Sampler{
		log: discardLogger(), interval: interval,
		primary:  &pgNode{name: "primary", url: fmt.Sprintf("postgres://scalelab@%s/postgres?sslmode=disable&default_query_exec_mode=simple_protocol", addr)},
		replicas: []pgNode{{name: "replica-1", slot: "replica_1"}},
		lag:      map[string]*lagSeries{"replica-1": {}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.lagLoop(ctx) })
	defer wg.Wait()
	defer cancel()

	samples := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.lag["replica-1"].samples
	}
	// Three samples take about 0.6 s here (connect, then a query each);
	// the deadline is only for a loaded machine.
	deadline := time.Now().Add(30 * time.Second)
	for samples() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d lag samples in 30 s from a primary that answers in %v at a %v interval, want 3", samples(), delay, interval)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.Latest(); len(got) != 1 || got[0].Name != "replica-1" || !got[0].Streaming {
		t.Errorf("Latest() = %+v, want replica-1 streaming", got)
	}
}

// slowPrimary serves lagQuery's answer, one streaming replica, over the
// Postgres protocol, waiting delay before each reply (the start-up's
// included), until the test ends.
func slowPrimary(t *testing.T, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if err := serveSlowPrimary(c, delay); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
					t.Logf("slow primary: %v", err)
				}
			})
		}
	})
	return ln.Addr().String()
}

func serveSlowPrimary(c net.Conn, delay time.Duration) error {
	b := pgproto3.NewBackend(c, c)
	if _, err := b.ReceiveStartupMessage(); err != nil {
		return fmt.Errorf("startup: %w", err)
	}
	time.Sleep(delay)
	b.Send(&pgproto3.AuthenticationOk{})
	b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	b.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	b.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := b.Flush(); err != nil {
		return fmt.Errorf("startup reply: %w", err)
	}
	col := func(name string, oid uint32) pgproto3.FieldDescription {
		return pgproto3.FieldDescription{Name: []byte(name), DataTypeOID: oid, DataTypeSize: -1, TypeModifier: -1}
	}
	const textOID, boolOID, float8OID = 25, 16, 701
	for {
		msg, err := b.Receive()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		switch msg.(type) {
		case *pgproto3.Terminate:
			return nil
		case *pgproto3.Query:
		default:
			return fmt.Errorf("unexpected %T", msg)
		}
		time.Sleep(delay)
		b.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
			col("slot_name", textOID), col("streaming", boolOID), col("replay_lag", float8OID),
			col("replay_lsn", float8OID), col("current", float8OID),
		}})
		b.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("replica_1"), []byte("t"), []byte("0.001"), []byte("1000"), []byte("1000")}})
		b.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if err := b.Flush(); err != nil {
			return fmt.Errorf("query reply: %w", err)
		}
	}
}

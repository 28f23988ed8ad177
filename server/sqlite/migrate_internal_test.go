package sqlite

import (
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"scalelab/server"
)

// TestUsageMigrationBackfills: migration 00002 on a database that already
// holds records sets every user's counters from what they store.
func TestUsageMigrationBackfills(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &server.User{Email: "ada@example.com", Username: "ada", PasswordHash: "h"}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{`"é"`, `{"a":[1,2]}`} {
		if err := db.CreateRecord(ctx, &server.Record{UserID: u.ID, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	fsys, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, db.writer, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatalf("migrate down to 1: %v", err)
	}
	db.Close()
	db, err = Open(ctx, path, Options{}) // migrates up again
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Usage(ctx, u.ID)
	if want := (server.Usage{Records: 2, Bytes: int64(len(`"é"`) + len(`{"a":[1,2]}`))}); err != nil || got != want {
		t.Errorf("Usage after the migration = %+v, %v, want %+v", got, err, want)
	}
}

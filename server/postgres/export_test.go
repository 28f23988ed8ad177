package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"scalelab/server"
)

// Statement is one of the store's statements with its arguments for a
// user (by id and by login) and one of the user's records.
type Statement struct {
	Name string
	SQL  string
	Args func(userID, recordID, login string) []any
}

// PartitionKeyStatements are the store's statements, as it runs them in
// the partitioned layout, that name a user: each must read one partition
// of users or records (TestPartitionPruning).
func PartitionKeyStatements() []Statement {
	user := func(userID, _, _ string) []any { return []any{userID} }
	record := func(userID, recordID, _ string) []any { return []any{recordID, userID} }
	return []Statement{
		{"User", sqlUser, user},
		{"UserByLogin", sqlUserByLoginPartitioned, func(_, _, login string) []any { return []any{login} }},
		{"userExists", sqlUserExists, user},
		{"Usage", sqlUsage, user},
		{"recordTx lock", sqlLockUsage, user},
		{"recordTx counters", sqlSetUsage, func(userID, _, _ string) []any { return []any{1, 2, userID} }},
		{"UpdateUser", sqlUpdateUser, func(userID, _, _ string) []any {
			return []any{nil, nil, nil, nil, nil, "New Name", nil, server.Now(), userID, nil}
		}},
		{"UpdateUser lock", sqlLockUserLogins, user},
		{"DeleteUser", sqlDeleteUser, user},
		{"Record", sqlRecord, record},
		{"Records", fmt.Sprintf(sqlRecordsFirst, recordCols), func(userID, _, _ string) []any { return []any{userID, 21} }},
		{"Records after a cursor", fmt.Sprintf(sqlRecordsAfter, recordCols), func(userID, _, _ string) []any {
			return []any{userID, "ffffffff-ffff-7fff-bfff-ffffffffffff", 21}
		}},
		{"UpdateRecord size", sqlRecordSize, record},
		{"UpdateRecord", sqlUpdateRecord, func(userID, recordID, _ string) []any {
			return []any{`{"b":2}`, server.Now(), recordID, userID}
		}},
		{"DeleteRecord", sqlDeleteRecord, record},
	}
}

// UserByLoginSQL is the statement UserByLogin runs in a layout.
func UserByLoginSQL(partitioned bool) string {
	if partitioned {
		return sqlUserByLoginPartitioned
	}
	return sqlUserByLogin
}

// ReplicaPoolStats returns each replica pool's statistics, in the order of
// Options.Replicas.
func ReplicaPoolStats(db *DB) []*pgxpool.Stat {
	out := make([]*pgxpool.Stat, len(db.replicas))
	for i, r := range db.replicas {
		out[i] = r.pool.Stat()
	}
	return out
}

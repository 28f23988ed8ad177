package app

import (
	"flag"

	"scalelab/server"
	"scalelab/server/auth"
)

// Defaults of the budgets issue 9 added.
const (
	// DefaultSignupLimit is sign-ups per minute per client address: a
	// person signs up once; a script that signs up faster is abuse or a
	// load test that should raise it.
	DefaultSignupLimit = 60
	// DefaultQuotaRecords and DefaultQuotaBytes bound what one user may
	// store: 10,000 records and 100 MiB.
	DefaultQuotaRecords = 10_000
	DefaultQuotaBytes   = 100 << 20
)

// registerBudgetFlags defines the flags of the password-hashing budget,
// the sign-up budget and the record quotas.
func (c *Config) registerBudgetFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.HashQueue, "hash-queue", auth.DefaultHashQueue, "password hashes that may wait for a core; past it sign-ups and logins get 503 with Retry-After at once")
	fs.IntVar(&c.SignupLimit, "signup-limit", DefaultSignupLimit, "sign-ups per minute per client address on /api/v1 (burst N), when --rate-limit or --login-limit turns limiting on; 0 = off")
	fs.Int64Var(&c.QuotaRecords, "quota-records", DefaultQuotaRecords, "records one user may store; 0 = no limit")
	fs.Int64Var(&c.QuotaBytes, "quota-bytes", DefaultQuotaBytes, "bytes of record data one user may store; 0 = no limit")
}

// quota is the per-user record quota the flags ask for.
func (c *Config) quota() server.Quota {
	return server.Quota{Records: c.QuotaRecords, Bytes: c.QuotaBytes}
}

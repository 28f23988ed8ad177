package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Remember stores a short-lived marker value under name, shared by every
// instance: the HTTP layer keeps each user's latest write position there so
// that the user's next reads, through any instance, are served no older than
// that write (read-your-writes). It goes through the same timeout and
// circuit breaker as the cache itself.
func (c *L2) Remember(ctx context.Context, name, value string, ttl time.Duration) error {
	err := c.do(ctx, func(ctx context.Context) error {
		return c.rdb.Set(ctx, c.markerKey(name), value, ttl).Err()
	})
	if err != nil {
		return fmt.Errorf("remember %s: %w", name, err)
	}
	return nil
}

// Recall returns the marker stored under name. ok is false when there is
// none; err is set when Redis could not say (down, slow, breaker open), and
// then the caller must assume the worst.
func (c *L2) Recall(ctx context.Context, name string) (value string, ok bool, err error) {
	err = c.do(ctx, func(ctx context.Context) error {
		var gerr error
		value, gerr = c.rdb.Get(ctx, c.markerKey(name)).Result()
		return gerr
	})
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("recall %s: %w", name, err)
	}
	return value, true, nil
}

func (c *L2) markerKey(name string) string { return c.prefix + "marker:{" + name + "}" }

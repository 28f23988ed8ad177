//go:build !linux

package burn

import (
	"errors"
	"time"
)

func threadCPU() (time.Duration, error) { return 0, errors.New("no thread CPU clock") }

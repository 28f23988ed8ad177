//go:build !linux

package burn

import (
	"errors"
	"syscall"
	"time"
)

func threadCPU() (time.Duration, error) { return 0, errors.New("no thread CPU clock") }

func dieWithParent() *syscall.SysProcAttr { return nil }

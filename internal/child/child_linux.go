package child

import "syscall"

// dieWithParent makes the program die with this process. Go keeps the
// starting thread alive as long as the process runs (no goroutine that
// starts a program locks it), so the signal comes on process exit.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package chdb

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Go turns a nil dereference or other fault in Go code into a panic that net/http recovers
// per request — only while Go's own handlers are installed for the synchronous fault signals.
// Loading and connecting chDB resets SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP and
// SIGSYS to their default action (seen with 26.5: chdb_set_signal_handlers_enabled(0) keeps
// ClickHouse's own handlers out but leaves SIG_DFL behind), so a nil dereference in any
// handler killed the whole process with "segmentation fault" and no Go trace. The library's
// entry points that may touch signal dispositions therefore run between saveSignals and
// restore, which puts back exactly what the Go runtime had installed.
//
// The fault signals only: ClickHouse keeps the handlers it installs for other signals (its
// query profiler's real-time signal), which Go does not use. A fault in chDB's own C++ code,
// on one of its threads, now reaches Go's handler, which reports the foreign fault and exits —
// the same end as the default action, with a message.
var faultSignals = []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL,
	syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS}

// kernelSigaction is struct sigaction as the rt_sigaction system call takes it on Linux
// (handler, flags, restorer, mask): copied back verbatim, so Go's SA_ONSTACK, SA_SIGINFO and
// restorer stay as the runtime set them.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

type savedSignals map[syscall.Signal]kernelSigaction

func sigaction(sig syscall.Signal, act, old *kernelSigaction) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)),
		uintptr(unsafe.Pointer(old)), unsafe.Sizeof(uint64(0)), 0, 0)
	if e != 0 {
		return fmt.Errorf("cannot read or set the handler of %v: %w", sig, e)
	}
	return nil
}

// saveSignals records the current handlers of the fault signals.
func saveSignals() (savedSignals, error) {
	s := savedSignals{}
	for _, sig := range faultSignals {
		var old kernelSigaction
		if err := sigaction(sig, nil, &old); err != nil {
			return nil, err
		}
		s[sig] = old
	}
	return s, nil
}

// restore installs the recorded handlers again.
func (s savedSignals) restore() error {
	for sig, act := range s {
		if err := sigaction(sig, &act, nil); err != nil {
			return err
		}
	}
	return nil
}

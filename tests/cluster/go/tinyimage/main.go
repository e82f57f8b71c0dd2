// Command tinyimage is the only program of the tiny image the real-kubelet node uses (tests/cluster/
// realkubelet.py): there is no registry to pull from, so its sandbox ("pause") image and its test
// workload image are both made locally from this one static binary.
//
// As /pause it waits for SIGTERM or SIGINT and reaps orphans, as the pause container does; as /hello
// it prints its arguments and its environment variable HELLO, then exits with the code in EXIT_CODE.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func pause() int {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return 0
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}

func hello(args []string) int {
	fmt.Printf("hello from a real kubelet's container: %s (HELLO=%s, pid %d)\n",
		strings.Join(args, " "), os.Getenv("HELLO"), os.Getpid())
	code, err := strconv.Atoi(os.Getenv("EXIT_CODE"))
	if err != nil {
		return 0
	}
	return code
}

func main() {
	switch filepath.Base(os.Args[0]) {
	case "pause":
		os.Exit(pause())
	default:
		os.Exit(hello(os.Args[1:]))
	}
}

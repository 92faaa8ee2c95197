package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// machineFacts describe where and with what the benchmark ran.
type machineFacts struct {
	CPUs      int
	CPUModel  string
	Kernel    string
	GoVersion string
	Postgres  string
	Pgbench   string
	PgBouncer string
	LoadStart string // /proc/loadavg's 1, 5 and 15 minute averages
	LoadEnd   string
}

// gatherFacts collects what can be known without the servers running.
func gatherFacts(pgbench string) machineFacts {
	return machineFacts{
		CPUs:      runtime.NumCPU(),
		CPUModel:  cpuModel(),
		Kernel:    firstLine("/proc/sys/kernel/osrelease"),
		GoVersion: runtime.Version(),
		Pgbench:   commandVersion(pgbench, "--version"),
		LoadStart: loadAverage(),
	}
}

// cpuModel returns the "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return "unknown"
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	fields := strings.Fields(firstLine("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// firstLine returns the first line of a file, or "unknown".
func firstLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return line
}

// commandVersion returns the first line a program prints for args.
func commandVersion(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

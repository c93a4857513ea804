package scenario

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTick is the unit of utime/stime in /proc/PID/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// ProcCPU returns the user+system CPU time pid has used, from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick, nil
}

// ProcChildrenCPU returns the user+system CPU time of pid's children that
// have exited and been waited for (cutime+cstime, fields 16 and 17 of
// /proc/PID/stat): where the CPU time of a worker process goes when it
// exits, so that a sum over a process tree does not drop it.
func ProcChildrenCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	ut, _ := strconv.ParseInt(f[13], 10, 64)
	st, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(ut+st) * clockTick, nil
}

// statFields returns the fields of /proc/PID/stat from field 3 (state) on.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name may hold spaces; fields are counted after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return f, nil
}

func procPPID(pid int) int {
	f, err := statFields(pid)
	if err != nil {
		return -1
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// Tree returns pid and all its descendants.
func Tree(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pp := procPPID(p)
		children[pp] = append(children[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statusField returns a "Name: value kB" field of /proc/PID/status in bytes.
func statusField(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			fs := strings.Fields(v)
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			if len(fs) > 1 && fs[1] == "kB" {
				n <<= 10
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, name)
}

// ProcRSS returns the resident set size of pid (VmRSS) in bytes.
func ProcRSS(pid int) (int64, error) { return statusField(pid, "VmRSS") }

// ProcMem is a process's memory from /proc/PID/smaps_rollup, in bytes.
// RSS counts every resident page the process maps, so the pages of the
// executable that N worker processes share are counted N times; PSS
// divides each shared page among the processes that map it, so PSS sums
// over processes to the memory they use together. PssAnon is the
// anonymous part (heap, stacks, runtime structures): what connections
// cost; PssFile is the share of the mapped files (the binary).
type ProcMem struct {
	RSS     int64 `json:"rss"`
	PSS     int64 `json:"pss"`
	PssAnon int64 `json:"pss_anon"`
	PssFile int64 `json:"pss_file"`
}

// Add adds o to m field by field.
func (m *ProcMem) Add(o ProcMem) {
	m.RSS += o.RSS
	m.PSS += o.PSS
	m.PssAnon += o.PssAnon
	m.PssFile += o.PssFile
}

// ReadProcMem reads /proc/PID/smaps_rollup.
func ReadProcMem(pid int) (ProcMem, error) {
	var m ProcMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "Rss":
			dst = &m.RSS
		case "Pss":
			dst = &m.PSS
		case "Pss_Anon":
			dst = &m.PssAnon
		case "Pss_File":
			dst = &m.PssFile
		default:
			continue
		}
		if fs := strings.Fields(v); len(fs) > 0 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			*dst = n << 10
		}
	}
	return m, nil
}

// ProcFDs returns the number of open file descriptors of pid.
func ProcFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// Kernel is the system-wide kernel memory the report attributes to sockets.
type Kernel struct {
	SlabBytes    int64 `json:"slab_bytes"`     // /proc/meminfo Slab
	SockMemBytes int64 `json:"sock_mem_bytes"` // /proc/net/sockstat TCP mem (pages) × page size
	TCPInUse     int64 `json:"tcp_inuse"`      // /proc/net/sockstat TCP inuse
	TCPAlloc     int64 `json:"tcp_alloc"`
	TCPTimeWait  int64 `json:"tcp_tw"`
}

// ReadKernel reads /proc/meminfo and /proc/net/sockstat.
func ReadKernel() Kernel {
	var k Kernel
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Slab:"); ok {
				fs := strings.Fields(v)
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				k.SlabBytes = n << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			v, ok := strings.CutPrefix(line, "TCP:")
			if !ok {
				continue
			}
			fs := strings.Fields(v)
			for i := 0; i+1 < len(fs); i += 2 {
				n, _ := strconv.ParseInt(fs[i+1], 10, 64)
				switch fs[i] {
				case "inuse":
					k.TCPInUse = n
				case "alloc":
					k.TCPAlloc = n
				case "tw":
					k.TCPTimeWait = n
				case "mem":
					k.SockMemBytes = n * int64(os.Getpagesize())
				}
			}
		}
	}
	return k
}

// PinSelf binds every thread of this process, and so the threads they
// create, to cpus.
func PinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for range 2 { // a thread created during the first pass inherits the old mask
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return fmt.Errorf("pin to CPUs %v: %w", cpus, err)
			}
		}
	}
	return nil
}

// SelfCPU returns the CPU time this process has used.
func SelfCPU() time.Duration {
	d, _ := ProcCPU(os.Getpid())
	return d
}

// SelfRSS returns this process's resident set size.
func SelfRSS() int64 {
	n, _ := ProcRSS(os.Getpid())
	return n
}

// Machine describes the host for reports.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os"`
	NoFile   uint64 `json:"nofile_limit"`
}

// ReadMachine describes this host.
func ReadMachine() Machine {
	var m Machine
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok && m.CPU == "" {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
			if strings.HasPrefix(line, "processor") {
				m.Cores++
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				m.MemBytes = n << 10
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		m.NoFile = rl.Cur
	}
	return m
}

// RepoRoot finds the megaws repository root (the directory holding the go.mod
// of module github.com/megaws/megaws) from dir upwards.
func RepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/megaws/megaws\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no megaws repository above %s", dir)
		}
		d = parent
	}
}

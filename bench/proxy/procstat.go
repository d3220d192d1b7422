package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// groupUsage is the CPU time and resident memory of every process in one
// process group: a proxy and, for nginx, its workers.
type groupUsage struct {
	// CPU is utime+stime in seconds, summed over the group.
	CPU float64
	// RSS is resident memory in bytes, summed over the group.
	RSS int64
	// Procs counts the processes found.
	Procs int
}

// readGroupUsage scans /proc for the processes of process group pgid. A
// process that exits during the scan is skipped; its CPU time is lost,
// which is why the harness reads usage while the proxy is running.
func readGroupUsage(pgid int) (groupUsage, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return groupUsage{}, fmt.Errorf("read /proc: %w", err)
	}
	var u groupUsage
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseProcStat(b)
		if err != nil {
			return groupUsage{}, fmt.Errorf("/proc/%s/stat: %w", e.Name(), err)
		}
		if st.pgrp != pgid {
			continue
		}
		u.CPU += float64(st.utime+st.stime) / clockTicks
		u.RSS += st.rssPages * int64(os.Getpagesize())
		u.Procs++
	}
	if u.Procs == 0 {
		return u, fmt.Errorf("no process in group %d", pgid)
	}
	return u, nil
}

// procStat is the part of /proc/<pid>/stat the harness reads.
type procStat struct {
	pgrp         int
	utime, stime int64
	rssPages     int64
}

// parseProcStat reads fields 5 (pgrp), 14 (utime), 15 (stime) and 24 (rss)
// of proc(5)'s stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, state
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want at least 22", len(f))
	}
	var st procStat
	var errs [4]error
	st.pgrp, errs[0] = strconv.Atoi(f[2])
	st.utime, errs[1] = strconv.ParseInt(f[11], 10, 64)
	st.stime, errs[2] = strconv.ParseInt(f[12], 10, 64)
	st.rssPages, errs[3] = strconv.ParseInt(f[21], 10, 64)
	for _, err := range errs {
		if err != nil {
			return procStat{}, fmt.Errorf("parse fields: %w", err)
		}
	}
	return st, nil
}

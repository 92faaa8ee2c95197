package main

import (
	"context"
	"time"
)

// cpuSeries is a process's CPU time read at a steady interval during a
// pgbench run, so that the CPU it spent while pgbench's clients connected
// can be told from the CPU it spent on their transactions.
//
// It matters with hundreds of clients: each one's authentication costs
// the proxy far more than a transaction (PgBouncer derives a SCRAM key
// from the plain-text password of its userlist for each client, several
// milliseconds), and pgbench connects them all inside the -T duration.
type cpuSeries struct {
	points []cpuPoint
}

// cpuPoint is one reading of a cpuSeries.
type cpuPoint struct {
	at  time.Duration // since the series started
	cpu time.Duration // the process's CPU time so far
}

// cpuInterval is how often a cpuSeries reads the CPU time (whose
// resolution is 10 ms).
const cpuInterval = 100 * time.Millisecond

// sampleCPU reads the CPU time of pid now and then every interval until
// ctx ends, and returns the series through the function stop, which ends
// the sampling and waits for it. Failed readings are left out.
func sampleCPU(ctx context.Context, pid int, interval time.Duration) (stop func() *cpuSeries) {
	s := &cpuSeries{}
	begin := time.Now()
	read := func() {
		if cpu, err := cpuTime(pid); err == nil {
			s.points = append(s.points, cpuPoint{at: time.Since(begin), cpu: cpu})
		}
	}
	read()
	end := alongside(ctx, func(ctx context.Context) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				read()
			}
		}
	})
	return func() *cpuSeries {
		end()
		return s
	}
}

// between returns the CPU time spent from the first reading at or after
// from to the last reading at or before to, and the time between those
// two readings; ok is false when there are not two such readings.
func (s *cpuSeries) between(from, to time.Duration) (cpu, span time.Duration, ok bool) {
	first, last := -1, -1
	for i, p := range s.points {
		if p.at >= from && first < 0 {
			first = i
		}
		if p.at <= to {
			last = i
		}
	}
	if first < 0 || last <= first {
		return 0, 0, false
	}
	a, b := s.points[first], s.points[last]
	return b.cpu - a.cpu, b.at - a.at, true
}

// connectSlack is the margin around pgbench's transaction phase that the
// steady CPU leaves out: pgbench starts, connects once to read the scale,
// and then starts its clients after the series has begun.
const connectSlack = 300 * time.Millisecond

// steadyCPU returns the CPU a proxy spent while pgbench's clients ran
// transactions, all connected, and an estimate of the transactions that
// ran meanwhile (res's rate over that time). pgbench connects every
// client before the first transaction (res.connTime), inside the run's
// duration, and disconnects them after it; both are left out, with
// connectSlack on either side. ok is false when too little time remains.
func steadyCPU(s *cpuSeries, res pgbenchResult, duration time.Duration) (cpu time.Duration, txns int64, ok bool) {
	cpu, span, ok := s.between(res.connTime+connectSlack, duration-connectSlack)
	if !ok || span < time.Second {
		return 0, 0, false
	}
	return cpu, int64(res.tps * span.Seconds()), true
}

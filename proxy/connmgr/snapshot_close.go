package connmgr

import "time"

// The resources a snapshot owns live as long as it serves: today its
// global rate-limit client (a gRPC connection). The proxy ends a snapshot
// in one of two ways, and these methods are the only ones that release
// what it owns.

// Close releases the snapshot's resources now: for a snapshot that never
// served (a failed start or reload), or whose listener has drained. A nil
// snapshot has nothing to close.
func (s *Snapshot) Close() error {
	if s == nil || s.RateLimit == nil {
		return nil
	}
	return s.RateLimit.Close()
}

// Retire releases the resources of a snapshot that a reload replaced,
// after grace: the requests still running on it keep using them until
// then. The snapshot must not be installed again.
func (s *Snapshot) Retire(grace time.Duration) {
	if s == nil || s.RateLimit == nil {
		return
	}
	time.AfterFunc(grace, func() { _ = s.Close() })
}

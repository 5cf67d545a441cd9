package proxy

// parkedCount is how many connections il holds parked now.
func parkedCount(il *IdleListener) int {
	il.park.mu.Lock()
	defer il.park.mu.Unlock()
	return len(il.park.conns)
}

package listener

// parkedCount is how many connections il holds parked now.
func parkedCount(il *Idle) int {
	il.park.mu.Lock()
	defer il.park.mu.Unlock()
	return len(il.park.conns)
}

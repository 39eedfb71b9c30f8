package notify

// Queue is one client's notifications waiting to be written: encoded
// NotificationResponse messages, oldest first, shared with the other
// clients of the same notification (never modified). It is bounded: a
// Push beyond max drops the oldest and counts it, so a client that does
// not read costs at most max messages. The zero value is empty and holds
// no memory; Take hands the backing array to the caller, so an emptied
// queue holds none either.
type Queue struct {
	frames  [][]byte
	head    int // frames[:head] were dropped (nil) and are reclaimed at the next growth
	dropped int
}

// Push appends frame, dropping the oldest queued one if max are queued
// already (max < 1 counts as 1). It reports whether one was dropped.
func (q *Queue) Push(frame []byte, max int) (dropped bool) {
	max = maxOne(max)
	if q.Len() >= max {
		q.frames[q.head] = nil
		q.head++
		q.dropped++
		dropped = true
	}
	if len(q.frames) == cap(q.frames) && q.head > 0 {
		n := copy(q.frames, q.frames[q.head:])
		clear(q.frames[n:])
		q.frames, q.head = q.frames[:n], 0
	}
	q.frames = append(q.frames, frame)
	return dropped
}

// Len is the number of queued messages.
func (q *Queue) Len() int { return len(q.frames) - q.head }

// Take empties the queue, returning its messages, oldest first, and how
// many were dropped since the last Take.
func (q *Queue) Take() (frames [][]byte, dropped int) {
	frames, dropped = q.frames[q.head:], q.dropped
	if len(frames) == 0 {
		frames = nil
	}
	*q = Queue{}
	return frames, dropped
}

func maxOne(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

//go:build !linux

package txpool

import "errors"

// parkSupported: elsewhere than Linux no client parks; an idle client
// keeps its goroutine, moved to a fresh one by the hop sweep as before.
const parkSupported = false

type parkSys struct{}

var errParkUnsupported = errors.New("parking idle clients needs Linux's epoll")

func (p *parking) open() error { return errParkUnsupported }

func (p *parking) close() {}

func (s *parkSys) ctl(*Client, ctlOp, uint32) (int32, error) { return -1, errParkUnsupported }

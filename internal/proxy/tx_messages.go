package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// messageRefusal is what a client whose message the framer refused is
// told before its connection closes; nil for other errors.
func messageRefusal(err error) *pgproto3.ErrorResponse {
	var held wire.ErrHeldTooLarge
	var unknown wire.ErrUnknownType
	switch {
	case errors.As(err, new(wire.ErrTooLarge)):
		return wire.Error(wire.CodeProgramLimitExceeded, "%v", err)
	case errors.As(err, &held) && held.Type == 'P':
		return wire.Error(wire.CodeProgramLimitExceeded, "%v; in transaction pooling a prepared statement's text over %d bytes cannot be kept: send it as a simple Query or use session pooling",
			err, wire.MaxHeldParse)
	case errors.As(err, &unknown):
		return wire.Error(wire.CodeProtocolViolation, "%v", err)
	case errors.As(err, &held), errors.As(err, new(wire.ErrLength)), errors.Is(err, txcore.ErrMalformed), errors.Is(err, wire.ErrNoBindNames):
		return wire.Error(wire.CodeProtocolViolation, "invalid frontend message: %v", err)
	}
	return nil
}

package handoff

import (
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to a Conn's receiving end (a real
// socket pair, without descriptors) and to the payload decoders: never a
// panic, never a payload beyond MaxPayload, never a file without its frame.
func FuzzDecode(f *testing.F) {
	f.Add(frameOf(KindHello, EncodeHello(Hello{Protocol: Protocol, ClientFormat: 1, PID: 42, Version: "v0.2.0"})))
	f.Add(frameOf(KindHello, EncodeHello(Hello{Protocol: Protocol, ClientFormat: 1, PID: 42, Version: "v0.3.0",
		Fleet: FleetSeat{PeerID: 2, Incarnation: "0123456789abcdef"}})))
	f.Add(frameOf(KindListener, EncodeListener("listen.address", "127.0.0.1:6432")))
	f.Add(append(frameOf(KindReady, nil), frameOf(KindDone, nil)...))
	f.Add(frameOf(KindAbort, AbortText("config: bad")))
	f.Add(frameOf(KindAdopted, EncodeAdopted(errors.New("no slot"))))
	f.Add(append(frameOf(KindDone, EncodeDone(DoneTakesCancels)), frameOf(KindCancel, EncodeCancel(12345, [4]byte{1, 2, 3, 4}))...))
	f.Add(frameOf(KindCancel, []byte{0, 0, 1}))
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		a, file, err := Pair()
		if err != nil {
			t.Skip(err)
		}
		b, err := FileConn(file)
		if err != nil {
			a.Close()
			t.Skip(err)
		}
		wrote := make(chan struct{})
		defer func() { b.Close(); <-wrote }()
		go func() { a.uc.Write(data); a.Close(); close(wrote) }()
		for {
			kind, payload, files, err := b.Recv()
			if err != nil {
				if files != nil {
					t.Fatal("files returned with an error")
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrame) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			if len(payload) > MaxPayload || len(files) != 0 {
				t.Fatalf("payload %d files %d", len(payload), len(files))
			}
			switch kind {
			case KindHello:
				DecodeHello(payload)
			case KindListener:
				DecodeListener(payload)
			case KindAdopted:
				DecodeAdopted(payload)
			case KindDone:
				DoneFlags(payload)
			case KindCancel:
				if pid, secret, err := DecodeCancel(payload); err == nil {
					if got := EncodeCancel(pid, secret); string(got) != string(payload) {
						t.Fatalf("cancel round trip: %x, want %x", got, payload)
					}
				}
			}
		}
	})
}

func frameOf(kind Kind, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	putHeader(b, kind, 0, len(payload))
	copy(b[headerLen:], payload)
	return b
}

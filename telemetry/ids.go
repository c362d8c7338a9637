package telemetry

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
)

// idGen makes UUIDv7 record ids: 48 bits of Unix milliseconds from the
// session's clock (Options.Now), then random bits from a ChaCha8 stream
// seeded once from crypto/rand or from Options.IDSeed, so that a simulation
// run again makes the same ids: uuid.NewV7 takes neither the clock nor the
// seed. Ids only need to be unique and time-ordered (they are not secrets).
// Speed is not the reason: with uuid.NewV7, BenchmarkRecordToolCall is
// within noise (1.06×, the same run), if with one allocation a call.
type idGen struct {
	mu  sync.Mutex
	rng *rand.ChaCha8
}

func newIDGen(fixed *[32]byte) *idGen {
	if fixed != nil {
		return &idGen{rng: rand.NewChaCha8(*fixed)}
	}
	var seed [32]byte
	crand.Read(seed[:]) // it never fails (Go 1.24 on: it crashes instead)
	return &idGen{rng: rand.NewChaCha8(seed)}
}

func (g *idGen) next(now time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	a, b := g.rng.Uint64(), g.rng.Uint64()
	g.mu.Unlock()
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6], u[7] = 0x70|byte(a>>56)&0x0f, byte(a>>48)
	u[8], u[9] = 0x80|byte(a>>40)&0x3f, byte(a>>32)
	u[10], u[11], u[12], u[13], u[14], u[15] = byte(a>>24), byte(a>>16), byte(b>>40), byte(b>>32), byte(b>>24), byte(b>>16)
	return u
}

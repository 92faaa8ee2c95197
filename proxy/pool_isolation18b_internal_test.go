package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/rewrite"
)

// TestPooledSettleLaterBatch holds a transaction-mode session to the
// settings of its next batch when the backend relay settles a batch
// (onBatchAnswered) only after the client relay, which saw the batch
// answered (done counted at its ReadyForQuery), noted the next batch's
// SET: settling one transaction must not drop, or count, a setting of
// the next one, whose portal runs after the settle.
func TestPooledSettleLaterBatch(t *testing.T) {
	encode := func(sql string) []byte {
		q, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		return q
	}
	cases := []struct {
		name   string
		status byte
		tag    string
	}{
		{"a SET parsed in the block COMMIT AND CHAIN opened is not dropped with the committed block's settings", 'T', "COMMIT"},
		{"a SET parsed after a COMMIT ended its block is not dropped with the committed block's settings", 'I', "COMMIT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := newPoolLink(nil, "t18b")
			ss := &session{pl: pl, log: zap.NewNop()}
			// Batch 1 opened a block and set work_mem in it; batch 2
			// ended it with tc.tag, answered.
			ss.sent.Store(2)
			ss.done.Store(2)
			ss.txStatus.Store(uint32(tc.status))
			pl.mu.Lock()
			pl.noteSetting(&pendingSetting{batch: 1, set: &pooledSetting{name: "work_mem", query: encode("SET work_mem = '8MB'")}}, false)
			pl.txEnd.commit = tc.tag == "COMMIT"
			pl.mu.Unlock()
			// The client relay: batch 3 parses, binds and executes a
			// SET TimeZone, before the backend relay settles batch 2.
			p := &pendingSetting{batch: 3, parsed: true, set: &pooledSetting{name: "timezone", query: encode("SET TimeZone = 'Asia/Tokyo'")}}
			ss.othersInBatch = 1
			noted := ss.pendSetting(p, SourceParse, "") || ss.pendTxSetting(p, SourceParse, "")
			if noted {
				pl.mu.Lock()
				pl.unnamedPend = p
				pl.mu.Unlock()
			}
			ss.pooledBind("", "")
			pl.mu.Lock()
			ss.settleSettings(2)
			pl.mu.Unlock()
			ss.pooledExecute("", &rewrite.Result{Kinds: []string{"set"}})
			// Batch 3 commits (an implicit transaction, or COMMIT).
			ss.done.Store(3)
			ss.txStatus.Store('I')
			pl.mu.Lock()
			pl.txEnd.set, pl.txEnd.commit = true, tc.status == 'T'
			ss.settleSettings(3)
			pl.mu.Unlock()
			if pl.keeps == "" && !pl.hasSetting("timezone") {
				t.Errorf("the session gives its backend back with settings %d, noted %v: the SET TimeZone PostgreSQL kept would reach the next session", len(pl.settings), noted)
			}
		})
	}
}

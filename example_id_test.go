package lazaret_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/lazaret/lazaret"
)

func ExampleAllocator() {
	// A real node keeps its lease in a small fsync'd file next to its data;
	// MemIDLease stands in for it here, and a ManualClock for the wall clock.
	lease := &lazaret.MemIDLease{}
	clock := lazaret.NewManualClock(time.Date(2026, 5, 28, 20, 26, 40, 0, time.UTC))
	cfg := lazaret.AllocatorConfig{Node: 7, Clock: clock, Lease: lease}

	alloc, err := lazaret.NewAllocator(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		id, err := alloc.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(id, id.Node(), id.Time().Format(time.RFC3339))
	}

	// After a crash, a new allocator over the same lease skips past every
	// second the old one may have used, even though the clock has not moved.
	alloc, err = lazaret.NewAllocator(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := alloc.Next()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id, id.Node(), id.Time().Format(time.RFC3339))

	// Ids come back from users and legacy tools as text.
	parsed, err := lazaret.ParseID(id.String())
	fmt.Println(parsed == id, parsed.Format(), err)

	// Output:
	// 1wShJQ-000000-07 7 2026-05-28T20:26:40Z
	// 1wShJQ-000001-07 7 2026-05-28T20:26:40Z
	// 1wShJQ-000002-07 7 2026-05-28T20:26:40Z
	// 1wShJT-000000-07 7 2026-05-28T20:26:43Z
	// true exim16 <nil>
}

func ExampleParseID() {
	for _, s := range []string{
		"1wShJQ-000002-07",        // 16-char form
		"1r6Bwm-000000002h3-2n4V", // 23-char form, as Exim 4.97 writes
		"1wShJQ-000002-7",         // one digit short
		"1wShJQ-00000!-07",        // not base 62
	} {
		id, err := lazaret.ParseID(s)
		if err != nil {
			fmt.Println(errors.Is(err, lazaret.ErrInvalidID), err)
			continue
		}
		fmt.Println(id, id.Format(), id.Node(), id.Time().Format(time.RFC3339))
	}
	// Output:
	// 1wShJQ-000002-07 exim16 7 2026-05-28T20:26:40Z
	// 1r6Bwm-000000002h3-2n4V exim23 665291 2023-11-23T15:48:56Z
	// true parse id: invalid message id: "1wShJQ-000002-7" is 15 bytes long, want 16 (tttttt-ssssss-nn) or 23 (tttttt-sssssssssss-nnnn)
	// true parse id: invalid message id: "1wShJQ-00000!-07" has "!" at offset 12, want a digit or an ASCII letter
}

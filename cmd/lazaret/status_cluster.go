package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret"
)

// printMembers prints the cluster table of `lazaret status`: one row per
// member with its number, name, peer address, state and the figures it
// reported (blank when it could not be asked; the reason is in the last
// column).
func printMembers(w io.Writer, members []lazaret.MemberStatus, now time.Time) error {
	if len(members) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ncluster: %d members\n", len(members))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAME\tADDRESS\tSTATE\tSHARDS\tBYTES\tUNDER-PROTECTED\tOLDEST\tNOTE")
	for _, ms := range members {
		name := ms.Name
		if ms.Self {
			name += " *"
		}
		shards, bytes, under, oldest := "", "", "", ""
		if ms.Reported {
			shards = strconv.FormatInt(ms.Shards, 10)
			bytes = strconv.FormatInt(ms.ShardBytes, 10)
			under = strconv.FormatInt(ms.UnderProtected, 10)
			if !ms.OldestUnderProtected.IsZero() {
				oldest = now.Sub(ms.OldestUnderProtected).Round(time.Second).String()
			} else {
				oldest = "-"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ms.Node, name, ms.PeerAddr, ms.State, shards, bytes, under, oldest, clip(ms.Error, 60))
	}
	return tw.Flush()
}

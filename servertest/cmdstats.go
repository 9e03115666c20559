package servertest

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CmdStat is one command's line of INFO commandstats.
type CmdStat struct{ Calls, Usec int64 }

// CommandStats reads INFO commandstats of one node, by lower-case command
// name (cmdstat_xreadgroup -> "xreadgroup"); CONFIG RESETSTAT zeroes it.
func CommandStats(ctx context.Context, rdb *redis.Client) (map[string]CmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]CmdStat{}
	for line := range strings.Lines(info) {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var s CmdStat
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.Calls = n
			case "usec":
				s.Usec = n
			}
		}
		out[name] = s
	}
	return out, nil
}

package sergasctl

import "context"

// combineExit adds the exit code of one service to the command's: the first failure's code stands,
// except that an unreachable database (ExitUnreachable) outranks a failed check.
func combineExit(code, next int) int {
	if next == ExitUnreachable || code == ExitOK {
		return max(code, next)
	}
	return code
}

// eachService runs one for every target in order and reports the results: as one JSON document
// {"services": […], "ok", "exit_code"} with --json, otherwise printed one by one. It returns the
// combined exit code.
func eachService[R any](ctx context.Context, c *cmdCtx, targets []*target, one func(context.Context, *cmdCtx, *target) R,
	codeOf func(R) int, print func(*cmdCtx, R)) int {
	out := make([]R, 0, len(targets))
	code := ExitOK
	for _, t := range targets {
		r := one(ctx, c, t)
		out = append(out, r)
		code = combineExit(code, codeOf(r))
	}
	if c.opts.json {
		_ = writeJSON(c.Stdout, map[string]any{"services": out, "ok": code == ExitOK, "exit_code": code})
		return code
	}
	for _, r := range out {
		print(c, r)
	}
	return code
}

package sergasctl

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// backupName matches the manifests backup writes: <service>-<UTC stamp>.manifest.json.
var backupName = regexp.MustCompile(`^(token|audit|webhook)-([0-9]{8}T[0-9]{6}Z)\.manifest\.json$`)

// maxBackupFiles bounds the directory entries rotation reads.
const maxBackupFiles = 100000

// ownBackup is one backup of the service that this command made: a manifest it wrote, naming its file.
type ownBackup struct {
	at             time.Time
	manifest, file string
}

// listOwnBackups lists service's backups in dir: files whose manifest has our format and service, and
// whose name is the one backup gives; anything else in dir is not ours and is never listed.
func listOwnBackups(dir, service string) ([]ownBackup, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []ownBackup
	for i, e := range es {
		if i >= maxBackupFiles {
			break
		}
		m := backupName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != service || !e.Type().IsRegular() {
			continue
		}
		at, err := time.Parse(stampLayout, m[2])
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var man manifest
		if json.Unmarshal(raw, &man) != nil || man.Format != manifestFormat || man.Service != service ||
			man.File != service+"-"+m[2]+".db.gz" {
			continue
		}
		out = append(out, ownBackup{at: at, manifest: e.Name(), file: man.File})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.After(out[j].at) }) // newest first
	return out, nil
}

// keepSet picks the backups to keep: the newest of each of the keepDaily newest UTC days, the newest of
// each of the keepWeekly newest ISO weeks. bs is newest first.
func keepSet(bs []ownBackup, keepDaily, keepWeekly int) map[string]bool {
	keep := map[string]bool{}
	days, weeks := map[string]bool{}, map[string]bool{}
	for _, b := range bs {
		day := b.at.Format("2006-01-02")
		if !days[day] && len(days) < keepDaily {
			days[day] = true
			keep[b.manifest] = true
		}
		y, w := b.at.ISOWeek()
		week := fmt.Sprintf("%d-W%02d", y, w)
		if !weeks[week] && len(weeks) < keepWeekly {
			weeks[week] = true
			keep[b.manifest] = true
		}
	}
	return keep
}

// rotate deletes service's backups in dir (made by this command) that keepSet does not keep; the backup
// just made is always kept. It returns the deleted files' names.
func rotate(dir, service string, just *manifest, keepDaily, keepWeekly int) ([]string, error) {
	bs, err := listOwnBackups(dir, service)
	if err != nil {
		return nil, err
	}
	keep := keepSet(bs, keepDaily, keepWeekly)
	deleted := []string{}
	for _, b := range bs {
		if keep[b.manifest] || (just != nil && b.file == just.File) {
			continue
		}
		// The data first: a manifest without its file is harmless, a file without its manifest would no
		// longer be recognised as ours.
		if err := os.Remove(filepath.Join(dir, b.file)); err != nil && !os.IsNotExist(err) {
			return deleted, err
		}
		if err := os.Remove(filepath.Join(dir, b.manifest)); err != nil && !os.IsNotExist(err) {
			return deleted, err
		}
		deleted = append(deleted, b.file, b.manifest)
	}
	return deleted, syncDir(dir)
}

package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var uiFiles embed.FS

// UI returns a handler for the dashboard's static files (index.html, app.js
// and style.css), which are built into the binary. Mount it at the admin
// server's root: the page finds api/events relative to its own address and
// needs nothing from the network beyond it.
func UI() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // cannot happen: "ui" is a valid path, embedded above
	}
	return http.FileServerFS(sub)
}

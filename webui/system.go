package webui

// systemRoutes are the routes of the system pages.
func (s *Server) systemRoutes() []route { return nil }

// systemPageFiles are the templates of the system pages.
var systemPageFiles = []string{}

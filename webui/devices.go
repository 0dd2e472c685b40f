package webui

// deviceRoutes are the routes of the devices pages.
func (s *Server) deviceRoutes() []route { return nil }

// devicePageFiles are the templates of the devices pages.
var devicePageFiles = []string{}

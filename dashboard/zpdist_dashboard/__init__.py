"""The zpdist dashboard (Panel + HoloViews + datashader); see issue 3."""

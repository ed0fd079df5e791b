// placeholder, replaced by the Detection work

"""Images in (DICOM/PNG/JPEG) and display geometry options."""

"""Reading the ECG: a report image -> 12-lead signals (:mod:`.digitize`) -> WFDB / CSV files (:mod:`.formats`) ->
the measurements a cardiologist makes (:mod:`.measure`) -> the classic criteria that fire (:mod:`.criteria`)."""

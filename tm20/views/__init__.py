"""
What the doors (the REST API in L{tm20.api}, the console in L{tm20.console}) both show, written
once here so that neither door imports the other:

  - L{tm20.views.model}: the JSON views of the model (terminals, persons, logs, commands, ...);
  - L{tm20.views.events}: webhooks and their delivery attempts;
  - L{tm20.views.access}: access rules, holidays, codes, group settings, device plans;
  - L{tm20.views.csvexport}: the streamed CSV export of the attendance log.
"""
